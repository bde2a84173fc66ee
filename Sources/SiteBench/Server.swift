import Foundation
import Synchronization

/// Why the server child could not be used.
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

/// The `chipsite serve` child process under test, listening on 127.0.0.1.
/// Stopped with SIGTERM (then SIGKILL after a bounded wait) by ``stop()``,
/// and killed in `deinit` if still running.
final class ServeChild {
    let process: Process
    let pid: Int32
    let agent: String
    let port: Int
    let logPath: String

    /// Starts `binary serve --db db --listen 127.0.0.1:0` and waits at most
    /// `timeout` seconds for "chipsite: serving AGENT on HOST:PORT".
    init(binary: String, db: String, logPath: String, home: String, timeout: Double = 20) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("no chipsite binary at \(binary) (build it, or pass --binary PATH)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        // warning: the per-message info lines would otherwise be part of the cost measured.
        process.arguments = ["serve", "--db", db, "--listen", "127.0.0.1:0", "--log-level", "warning"]
        process.environment = ["PATH": "/usr/bin:/bin", "HOME": home]
        process.standardInput = FileHandle.nullDevice
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
        self.pid = process.processIdentifier
        self.logPath = logPath
        let deadline = Date().addingTimeInterval(timeout)
        var ready: (String, Int)?
        while ready == nil, Date() < deadline, process.isRunning {
            if let line = output.value.split(separator: "\n").first(where: { $0.hasPrefix("chipsite: serving ") }) {
                let parts = line.split(separator: " ")
                if parts.count == 5, let p = parts[4].split(separator: ":").last.flatMap({ Int($0) }) {
                    ready = (String(parts[2]), p)
                }
            }
            if ready == nil { Thread.sleep(forTimeInterval: 0.02) }
        }
        guard let ready else {
            if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit() }
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw BenchError("serve did not print its ready line within \(Int(timeout)) s: \(log.suffix(2000))")
        }
        (agent, port) = ready
    }

    /// `VmRSS` of the child in KiB, from /proc.
    func residentKiB() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    /// User plus system CPU seconds the child has used, from /proc/PID/stat.
    func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm) ": state is field 3, utime 14, stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Open file descriptors of the child (its sockets, the site file, pipes).
    func openDescriptors() -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }

    var isRunning: Bool { process.isRunning }

    /// SIGTERM, then at most `timeout` seconds for a graceful exit, then SIGKILL.
    /// Returns the exit status, or -9 when it had to be killed.
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

    deinit {
        if process.isRunning { kill(pid, SIGKILL) }
    }
}

/// CPU seconds (user plus system) this process has used.
func ownCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// A fresh private directory under $TMPDIR, removed by ``remove()``.
final class TempDir: Sendable {
    let path: String
    init() throws {
        var template = Array((NSTemporaryDirectory() + "/site-bench-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw BenchError("cannot create a temporary directory") }
        path = String(cString: p)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
