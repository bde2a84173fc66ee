import Foundation
import Testing

/// The repository root, found from this file's path.
let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// The built `chipsite` binary: $CHIPSITE_BIN, else .build/debug/chipsite.
/// `make test` builds it first; a missing binary fails the test.
func chipsiteBinary() throws -> String {
    let path = ProcessInfo.processInfo.environment["CHIPSITE_BIN"] ?? repoRoot + "/.build/debug/chipsite"
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw RunError("no chipsite binary at \(path): run `swift build` first (make test does)")
    }
    return path
}

struct RunError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// What one run of a command printed and returned.
struct Result {
    var code: Int32
    var stdout: String
    var stderr: String
}

/// Runs the binary with `arguments`, a clean environment plus `environment`,
/// and no terminal on stdin. Killed after `timeout` seconds.
func chipsite(_ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> Result {
    try run(try chipsiteBinary(), arguments, environment: environment, timeout: timeout)
}

func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read both pipes concurrently so a chatty child cannot block on a full pipe.
    nonisolated(unsafe) var outData = Data(), errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave()
    }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        _ = group.wait(timeout: .now() + 5)
        throw RunError("\(arguments.joined(separator: " ")) did not finish in \(timeout) s")
    }
    process.waitUntilExit()
    return Result(
        code: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

func fileBytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

/// Parses a command's --json output.
func json(_ text: String) throws -> [String: Any] {
    let parsed: Any
    do { parsed = try JSONSerialization.jsonObject(with: Data(text.utf8)) } catch {
        throw RunError("not JSON (\(error.localizedDescription)): \(text.prefix(500).debugDescription)")
    }
    guard let obj = parsed as? [String: Any] else {
        throw RunError("not a JSON object: \(text)")
    }
    return obj
}

/// Checks the error contract: exactly one line, `chipsite: error: …`, and the exit code.
func expectOneLineError(_ r: Result, code: Int32 = 1, containing needle: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.code == code, "exit code \(r.code), stderr: \(r.stderr)", sourceLocation: sourceLocation)
    let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
    #expect(lines.count == 1, "stderr: \(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.hasPrefix("chipsite: error: "), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.contains(needle), "stderr: \(r.stderr)", sourceLocation: sourceLocation)
    #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("Stack dump"), sourceLocation: sourceLocation)
}
