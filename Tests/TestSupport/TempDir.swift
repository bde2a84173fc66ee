import Foundation

/// A fresh private directory under `$TMPDIR`, removed with everything in it
/// when the value goes away. Every test that writes files works in one.
public final class TempDir: Sendable {
    public let path: String

    public init() throws {
        var template = Array((NSTemporaryDirectory() + "/chipsite-test-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw TempDirError() }
        path = String(cString: p)
    }

    /// The path of `name` inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// mkdtemp failed (a full or read-only temporary directory).
public struct TempDirError: Error, CustomStringConvertible {
    public var description: String { "cannot make a temporary directory" }
}
