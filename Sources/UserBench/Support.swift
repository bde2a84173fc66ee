import Dispatch
import Foundation
import Synchronization

/// Why the bench cannot go on.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Text collected from a pipe on another thread.
final class TextBuffer: Sendable {
    private let text = Mutex("")
    func append(_ s: String) { text.withLock { $0 += s } }
    var value: String { text.withLock { $0 } }
}

/// A fresh private directory under $TMPDIR.
final class TempDir: Sendable {
    let path: String
    init() throws {
        var template = Array((NSTemporaryDirectory() + "/user-bench-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw BenchError("cannot create a temporary directory") }
        path = String(cString: p)
    }
    func file(_ name: String) -> String { path + "/" + name }
}

/// What must be undone however the bench ends: the children and the directory.
final class Cleanup: Sendable {
    private let state = Mutex<(pids: Set<Int32>, dir: String?)>(([], nil))
    func track(pid: Int32) { state.withLock { _ = $0.pids.insert(pid) } }
    func untrack(pid: Int32) { state.withLock { _ = $0.pids.remove(pid) } }
    func track(dir: String) { state.withLock { $0.dir = dir } }

    /// Kills the children still tracked and removes the directory. Idempotent.
    func run() {
        let (pids, dir) = state.withLock { s in
            defer { s = ([], nil) }
            return (s.pids, s.dir)
        }
        for pid in pids { kill(pid, SIGKILL) }
        if let dir {
            if ProcessInfo.processInfo.environment["USER_BENCH_KEEP"] == "1" { return print("user-bench: kept \(dir)") }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// On SIGINT or SIGTERM: clean up, say so, exit 130.
    func onStopSignals(name: String) -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                self.run()
                print("\(name): stopped by signal \(sig)")
                exit(130)
            }
            source.resume()
            return source
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; the site file names it).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

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

/// A `chipsite serve` child, stopped with SIGTERM (then SIGKILL after a
/// bounded wait) by ``stop()``, killed in `deinit` if still running.
final class ServeChild {
    let process: Process
    let pid: Int32
    let agent: String

    /// Starts `binary serve --db db --listen 127.0.0.1:port --user-listen
    /// 127.0.0.1:userPort` and waits at most `timeout` seconds for
    /// "chipsite: serving AGENT on HOST:PORT".
    init(binary: String, db: String, port: Int, userPort: Int, timeout: Double = 30) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        // warning: the per-message info lines would otherwise be part of the cost measured.
        let level = ProcessInfo.processInfo.environment["USER_BENCH_SERVE_LOG"] ?? "warning"
        process.arguments = [
            "serve", "--db", db, "--listen", "127.0.0.1:\(port)", "--user-listen", "127.0.0.1:\(userPort)", "--log-level", level
        ]
        process.environment = ["PATH": "/usr/bin:/bin", "HOME": (db as NSString).deletingLastPathComponent]
        process.standardInput = FileHandle.nullDevice
        let logPath = db + ".log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath) ?? FileHandle.nullDevice
        let out = Pipe()
        process.standardOutput = out
        let output = TextBuffer()
        out.fileHandleForReading.readabilityHandler = { h in
            let data = h.availableData
            if data.isEmpty { h.readabilityHandler = nil; return }
            output.append(String(decoding: data, as: UTF8.self))
        }
        try process.run()
        self.process = process
        pid = process.processIdentifier
        let deadline = Date().addingTimeInterval(timeout)
        var ready: String?
        while ready == nil, Date() < deadline, process.isRunning {
            if let line = output.value.split(separator: "\n").first(where: { $0.hasPrefix("chipsite: serving ") }) {
                let parts = line.split(separator: " ")
                if parts.count == 5 { ready = String(parts[2]) }
            }
            if ready == nil { Thread.sleep(forTimeInterval: 0.02) }
        }
        guard let ready else {
            if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit() }
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw BenchError("serve did not print its ready line within \(Int(timeout)) s: \(log.suffix(2000))")
        }
        agent = ready
    }

    /// User plus system CPU seconds the child has used, from /proc/PID/stat.
    func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return nil
        }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// SIGTERM, then at most `timeout` seconds for a graceful exit, then SIGKILL.
    @discardableResult
    func stop(timeout: Double = 20) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
            return -9
        }
        return process.terminationStatus
    }

    deinit { if process.isRunning { kill(pid, SIGKILL) } }
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
