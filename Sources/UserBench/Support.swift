import BenchSupport
import Dispatch
import Foundation
import Synchronization

/// One run of the chipsite CLI: exit code and output.
struct CLIResult {
    var code: Int32
    var stdout: String
    var stderr: String
}

/// Runs `binary args` with an empty environment but PATH and HOME (the
/// bench's directory), killed after `timeout` seconds.
func runCLI(_ binary: String, _ args: [String], home: String, timeout: Double = 60) throws -> CLIResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = args
    process.environment = ["PATH": "/usr/bin:/bin", "HOME": home]
    process.standardInput = FileHandle.nullDevice
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let stdout = TextBuffer(), stderr = TextBuffer()
    for (pipe, buffer) in [(out, stdout), (err, stderr)] {
        pipe.fileHandleForReading.readabilityHandler = { h in
            let data = h.availableData
            if data.isEmpty { h.readabilityHandler = nil; return }
            buffer.append(String(decoding: data, as: UTF8.self))
        }
    }
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw BenchError("chipsite \(args.prefix(3).joined(separator: " ")) did not finish within \(Int(timeout)) s")
    }
    // The pipes' last bytes (bounded).
    let drained = Date().addingTimeInterval(2)
    while Date() < drained, out.fileHandleForReading.readabilityHandler != nil || err.fileHandleForReading.readabilityHandler != nil {
        Thread.sleep(forTimeInterval: 0.002)
    }
    return CLIResult(code: process.terminationStatus, stdout: stdout.value, stderr: stderr.value)
}

/// Runs `body` on a thread of its own (blocking sockets, SQLite) and
/// returns its result, so no thread of the concurrency pool is held.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            do { c.resume(returning: try body()) } catch { c.resume(throwing: error) }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

func now() -> Double { Date().timeIntervalSince1970 }

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}
