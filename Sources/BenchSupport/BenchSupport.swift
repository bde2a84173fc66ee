import Dispatch
import Foundation
import Synchronization

// What the benchmarks that drive real `chipsite serve` processes share
// (lift-bench, user-bench): errors, temporary directories, cleanup on a
// signal, free ports, the CLI as a child process, and serve children.
// Not shipped; no test depends on it.

/// Why the bench cannot go on.
public struct BenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Text collected from a pipe on another thread.
public final class TextBuffer: Sendable {
    private let text = Mutex("")
    public init() {}
    public func append(_ s: String) { text.withLock { $0 += s } }
    public var value: String { text.withLock { $0 } }
}

/// A fresh private directory under $TMPDIR, named after the bench.
public final class TempDir: Sendable {
    public let path: String
    public init(prefix: String) throws {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        guard let p = mkdtemp(&template) else { throw BenchError("cannot create a temporary directory") }
        path = String(cString: p)
    }
    public func file(_ name: String) -> String { path + "/" + name }
}

/// What must be undone however the bench ends: the children and the directory.
public final class Cleanup: Sendable {
    private let state = Mutex<(pids: Set<Int32>, dir: String?)>(([], nil))
    /// The bench's name, and the environment variable that keeps its directory (`=1`).
    let name: String, keep: String

    public init(name: String, keepVariable: String) {
        self.name = name
        self.keep = keepVariable
    }

    public func track(pid: Int32) { state.withLock { _ = $0.pids.insert(pid) } }
    public func untrack(pid: Int32) { state.withLock { _ = $0.pids.remove(pid) } }
    public func track(dir: String) { state.withLock { $0.dir = dir } }

    /// Kills the children still tracked and removes the directory. Idempotent.
    public func run() {
        let (pids, dir) = state.withLock { s in
            defer { s = ([], nil) }
            return (s.pids, s.dir)
        }
        for pid in pids { kill(pid, SIGKILL) }
        if let dir {
            if ProcessInfo.processInfo.environment[keep] == "1" { return print("\(name): kept \(dir)") }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// On SIGINT or SIGTERM: clean up, say so, exit 130.
    public func onStopSignals() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                self.run()
                print("\(self.name): stopped by signal \(sig)")
                exit(130)
            }
            source.resume()
            return source
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; the site file names it).
public func freePort() -> Int {
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

/// A `chipsite serve` child on 127.0.0.1:`port`, stopped with SIGTERM (then
/// SIGKILL after a bounded wait) by ``stop()``, killed in `deinit` if still running.
public final class ServeChild {
    public let process: Process
    public let pid: Int32
    public let agent: String
    public let port: Int

    /// Starts `binary serve --db db --listen 127.0.0.1:port` (and
    /// `--user-listen 127.0.0.1:userPort` when given) and waits at most
    /// `timeout` seconds for "chipsite: serving AGENT on HOST:PORT". serve
    /// logs at `warning` (the per-message info lines would be part of the
    /// cost measured) unless `logVariable` in the environment names a level.
    public init(binary: String, db: String, port wanted: Int, userPort: Int? = nil, logVariable: String, timeout: Double = 30) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("no chipsite binary at \(binary) (build it, or pass --binary PATH)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        let level = ProcessInfo.processInfo.environment[logVariable] ?? "warning"
        process.arguments =
            ["serve", "--db", db, "--listen", "127.0.0.1:\(wanted)", "--log-level", level]
            + (userPort.map { ["--user-listen", "127.0.0.1:\($0)"] } ?? [])
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
        var ready: (String, Int)?
        while ready == nil, Date() < deadline, process.isRunning {
            if let line = output.value.split(separator: "\n").first(where: { $0.hasPrefix("chipsite: serving ") }) {
                let parts = line.split(separator: " ")
                if parts.count == 5, let p = parts[4].split(separator: ":").last.flatMap({ Int($0) }) { ready = (String(parts[2]), p) }
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

    /// User plus system CPU seconds the child has used, from /proc/PID/stat.
    public func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return nil
        }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    public var isRunning: Bool { process.isRunning }

    /// SIGTERM, then at most `timeout` seconds for a graceful exit, then SIGKILL.
    @discardableResult
    public func stop(timeout: Double = 20) -> Int32 {
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
