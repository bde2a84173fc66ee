import Foundation
import Testing

/// Runs Debian's `zbarimg` (package zbar-tools) on image files. The tests
/// install nothing: without /usr/bin/zbarimg they fail with a clear message.
enum Zbar {
    static let path = "/usr/bin/zbarimg"
    /// How long one decoding may take before the process is killed.
    static let timeout: Duration = .seconds(20)

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Whether zbarimg is installed; records a test issue when it is not.
    static func isAvailable(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        if FileManager.default.isExecutableFile(atPath: path) { return true }
        Issue.record(
            "\(path) is missing: install Debian's zbar-tools (apt-get install zbar-tools) to run the QR decoding tests",
            sourceLocation: sourceLocation)
        return false
    }

    /// The exact bytes of the single QR code in `file`. `zbarimg --raw -q
    /// -Sbinary` prints the data as it is, without guessing a character set
    /// and converting (which would turn some UTF-8 into mojibake) and without
    /// the newline that it adds to text output.
    static func decode(_ file: URL) throws -> [UInt8] {
        try run(arguments: ["--raw", "-q", "-Sbinary", file.path])
    }

    /// Runs zbarimg with `arguments`, bounded by ``timeout``; its standard
    /// output goes to a temporary file so that no pipe can fill up.
    static func run(arguments: [String]) throws -> [UInt8] {
        let outputFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("zbar-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outputFile) }
        let handle = try FileHandle(forWritingTo: outputFile)
        defer { try? handle.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.005)
        }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw Failure(description: "zbarimg \(arguments.joined(separator: " ")) ran past \(timeout) and was killed")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "zbarimg \(arguments.joined(separator: " ")) exited with \(process.terminationStatus) (4 = no code found)")
        }
        return Array(try Data(contentsOf: outputFile))
    }
}

/// A fresh temporary directory for a test's files, removed by `remove()`.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("qrcode-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL {
        url.appendingPathComponent(name)
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}
