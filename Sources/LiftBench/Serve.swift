import ChipDaemon
import ChipModel
import ChipProtocol
import ChipStore
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
        var template = Array((NSTemporaryDirectory() + "/lift-bench-XXXXXX").utf8CString)
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
            if ProcessInfo.processInfo.environment["LIFT_BENCH_KEEP"] == "1" { return print("lift-bench: kept \(dir)") }
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

/// A `chipsite serve` child on 127.0.0.1:`port`, stopped with SIGTERM (then
/// SIGKILL after a bounded wait) by ``stop()``, killed in `deinit` if still running.
final class ServeChild {
    let process: Process
    let pid: Int32
    let agent: String
    let port: Int

    /// Starts `binary serve --db db --listen 127.0.0.1:port` and waits at
    /// most `timeout` seconds for "chipsite: serving AGENT on HOST:PORT".
    init(binary: String, db: String, port wanted: Int, timeout: Double = 30) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("no chipsite binary at \(binary) (build it, or pass --binary PATH)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        // warning: the per-message info lines would otherwise be part of the cost measured.
        // LIFT_BENCH_SERVE_LOG=debug (with LIFT_BENCH_KEEP=1) keeps serve's logs beside the site files for a look.
        let level = ProcessInfo.processInfo.environment["LIFT_BENCH_SERVE_LOG"] ?? "warning"
        process.arguments = ["serve", "--db", db, "--listen", "127.0.0.1:\(wanted)", "--log-level", level]
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
    func cpuSeconds() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return nil
        }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    var isRunning: Bool { process.isRunning }

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

/// One site of a bench network on 127.0.0.1: its file, one user named
/// after it, and (once started) its `chipsite serve` child. The bench reads
/// and writes the site file through a connection of its own, as the CLI does.
/// Unchecked Sendable: after setup, each bench thread uses its own sites only
/// (SiteStore serializes its own connection).
final class ServeSite: @unchecked Sendable {
    let name: String
    let path: String
    let port: Int
    let store: SiteStore
    let user: CUID
    let agent: AgentID
    var serve: ServeChild?

    /// A new site file (lift.interval 0: no automatic circular passes).
    init(dir: TempDir, name: String, extraConfig: [(ConfigKey, String)] = []) throws {
        self.name = name
        path = dir.file("\(name).db")
        port = freePort()
        store = try SiteStore.create(at: path, address: try SiteAddress(host: "127.0.0.1", port: port), passphrase: nil)
        user = try CUID(name)
        try store.addUser(cuid: user, name: name.capitalized, email: nil, sealingKey: nil)
        agent = try store.agent()
        try store.setConfigValue(.liftInterval, "0")
        try store.setConfigValue(.peerHandshakeRate, "100000")
        try store.setConfigValue(.peerHandshakeBurst, "100000")
        for (k, v) in extraConfig { try store.setConfigValue(k, v) }
    }

    func start(binary: String, cleanup: Cleanup) throws {
        let s = try ServeChild(binary: binary, db: path, port: port)
        cleanup.track(pid: s.pid)
        guard s.agent == agent.description else { throw BenchError("serve on \(name) reports agent \(s.agent), the file holds \(agent)") }
        serve = s
    }

    func stop(cleanup: Cleanup) -> Int32 {
        guard let s = serve else { return 0 }
        let status = s.stop()
        cleanup.untrack(pid: s.pid)
        serve = nil
        return status
    }

    /// Wakes this site's serve, as the CLI does after writing.
    func poke() { SiteDaemon.pokeRunning(siteFile: path) }

    var chad: CHAD { get throws { CHAD(cuid: user, agent: agent, address: try SiteAddress(host: "127.0.0.1", port: port)) } }

    /// `self`'s user pays `units` on `tally` through the site file and pokes serve, as `chipsite pay` does.
    func pay(_ tally: String, units: Int64) throws {
        let key = try store.userKey(user, sealingKey: nil)
        _ = try store.pay(tally: tally, units: units, memo: nil, ref: nil) { _ in key }
        poke()
    }

    func chainLength(_ tally: String) -> Int64 { (try? store.chainHead(of: tally).length) ?? -1 }
}

/// Opens a tally the real way (ticket, request, offer, accept) between
/// `foil`'s user (who pays, and owes) and `stock`'s user, who grants
/// `limit`; returns its uuid once both halves are open.
func openTally(foil: ServeSite, stock: ServeSite, limit: Int64 = Amount.maxMilli, timeout: Double = 60) throws -> String {
    let info = try stock.store.issueTicket(
        cuid: stock.user, expiresAt: Int64(Date().timeIntervalSince1970 * 1000) + 600_000, reuse: false, bound: nil,
        terms: ["side": "stock", "limit": .integer(limit)])
    let ticket = try TallyTicket(token: info.token, expires: info.expires, chad: stock.chad)
    _ = try foil.store.requestTally(cuid: foil.user, ticket: ticket, accept: true)
    foil.poke()
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if let t = try stock.store.tallies().first(where: { $0.partner.agent == foil.agent && $0.state == .open }),
            (try? foil.store.tally(t.uuid))?.state == .open
        {
            return t.uuid
        }
        Thread.sleep(forTimeInterval: 0.01)
    }
    throw BenchError("the tally \(foil.name) → \(stock.name) did not open within \(Int(timeout)) s")
}

/// Both halves of `tally` hold the same chain.
func agree(_ a: ServeSite, _ b: ServeSite, _ tally: String) -> Bool {
    guard let x = try? a.store.chainHead(of: tally), let y = try? b.store.chainHead(of: tally) else { return false }
    return x.length == y.length && x.head == y.head
}

/// Waits (bounded) until `condition` holds, checking every `every` seconds.
@discardableResult
func waitFor(_ seconds: Double, every: Double = 0.005, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: every)
    }
    return try condition()
}

func now() -> Double { Date().timeIntervalSince1970 }

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}
