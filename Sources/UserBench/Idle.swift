import BenchSupport
import ChipModel
import ChipStore
import ChipUserPort
import Dispatch
import Foundation
import Noise

/// Part 4 (issue 14): many registered devices, many sessions open and idle.
/// A third site of its own (c), so its RSS starts clean: users added with
/// ChipStore before serve starts, then for each device a user ticket
/// (ChipStore, as `chipsite user ticket` writes it, while serve runs) and
/// the registration handshake. Then `sessions` of them open a session and
/// send nothing while serve's VmRSS is read, and a fresh session pings;
/// the same pings with no idle session (before and after) are its ceiling.
///
/// The user port allows 20 handshakes a second and 64 connections from
/// one address (10.1, section 4): the devices connect from `addresses`
/// loopback addresses (127.0.0.2…), each paced below that rate. At most
/// 16 devices and 8 sessions per user (10.1): users enough for both.
enum Idle {
    struct Result {
        var devices = 0, sessions = 0, users = 0, addresses = 0
        /// VmRSS in KiB: after start (no device), after registering, with the sessions open, after closing them.
        var rssStart = 0.0, rssRegistered = 0.0, rssOpen = 0.0, rssClosed = 0.0
        var registerSeconds = 0.0, openSeconds = 0.0
        /// Ping round trips (seconds, sorted) of a fresh session with the idle sessions open, and with none (before and after).
        var idle = Pings(), none = Pings()
        var sent = 0, answered = 0
        var firstFailure: String?
        /// Server-side connections on the user port: with the sessions open, and at the end of the fresh session's pings (its own included).
        var openConnections = 0, connectionsAfterPings = 0
        var idleStillOpen = 0
        var perSession: Double { (rssOpen - rssRegistered) / Double(max(1, sessions)) }
        var p50: Double { percentile(idle.sorted, 0.5) }
        var p99: Double { percentile(idle.sorted, 0.99) }
        var none50: Double { percentile(none.sorted, 0.5) }
        var none99: Double { percentile(none.sorted, 0.99) }
    }

    static let addresses = 16
    /// Handshakes a second from one address (the port allows 20, burst 5).
    static let handshakeRate = 16.0

    static func run(binary: String, dir: TempDir, cleanup: Cleanup, devices: Int, sessions: Int, pings: Int, timeout: Double) async throws
        -> Result
    {
        let db = dir.file("c.db")
        let port = freePort(), userPort = freePort()
        for args in [
            ["init", "--host", "127.0.0.1", "--port", "\(port)"], ["config", "set", "user.port", "\(userPort)"],
            ["config", "set", "lift.interval", "0"]
        ] {
            let r = try runCLI(binary, args + ["--db", db], home: dir.path)
            guard r.code == 0 else {
                throw BenchError("chipsite \(args.prefix(2).joined(separator: " ")) failed (\(r.code)): \(r.stderr.suffix(500))")
            }
        }
        var r = Result()
        r.devices = devices
        r.sessions = sessions
        let perUserDevices = UserPortDefaults.maxDevicesPerUser, perUserSessions = UserPortDefaults.maxSessionsPerUser
        // Device i is user (i % users)'s; sessions are devices 0..<sessions and the fresh one is device `sessions`,
        // whose user then holds floor(sessions / users) < 8 sessions.
        r.users = max((devices + perUserDevices - 1) / perUserDevices, (sessions + perUserSessions) / perUserSessions)
        r.addresses = min(addresses, r.users)
        let store = try SiteStore.open(at: db)
        let cuids = try (0..<r.users).map { u in try CUID(String(format: "idle%04d", u)) }
        for (u, cuid) in cuids.enumerated() { try store.addUser(cuid: cuid, name: String(format: "Idle %04d", u), email: nil, sealingKey: nil) }

        let serve = try ServeChild(binary: binary, db: db, port: port, userPort: userPort, logVariable: "USER_BENCH_SERVE_LOG")
        cleanup.track(pid: serve.pid)
        defer {
            serve.stop()
            cleanup.untrack(pid: serve.pid)
        }
        r.rssStart = try rss(serve.pid)

        // Registration: one worker per address, each with the users u ≡ w (mod addresses), one device at a time.
        let keys = (0..<devices).map { _ in KeyPair.generate() }
        let registerStart = now()
        let (users, nAddresses) = (r.users, r.addresses)
        let firstTicket = try await withThrowingTaskGroup(of: UserTicket?.self) { g in
            for w in 0..<nAddresses {
                g.addTask {
                    var pace = Pacer(rate: handshakeRate)
                    var first: UserTicket?
                    for u in stride(from: w, to: users, by: nAddresses) {
                        for i in stride(from: u, to: devices, by: users) {
                            let t = try await register(
                                store: store, cuid: cuids[u], key: keys[i], name: "idle-\(i)", from: source(w), pace: &pace, timeout: timeout)
                            if first == nil { first = t }
                        }
                    }
                    return first
                }
            }
            var first: UserTicket?
            for try await t in g where first == nil { first = t }
            return first
        }
        guard let ticket = firstTicket else { throw BenchError("no device registered") }
        r.registerSeconds = now() - registerStart
        r.rssRegistered = try rss(serve.pid)
        let (address, agent) = (ticket.address, ticket.agent)
        let fresh = keys[sessions]
        var counts = PingCounts()

        // The fresh session's pings with no idle session open.
        r.none += try await ping(address: address, agent: agent, key: fresh, count: pings, serve: serve, timeout: timeout, counting: &counts)
        let before = try await connections(port: userPort, until: { $0 == 0 }, timeout: timeout)
        guard before == 0 else { throw BenchError("serve still holds \(before) connections on the user port \(Int(timeout)) s after they closed") }

        // The idle sessions: opened, then nothing sent on them.
        let openStart = now()
        let idle = try await withThrowingTaskGroup(of: [UserClientSession].self) { g in
            for w in 0..<nAddresses {
                g.addTask {
                    var pace = Pacer(rate: handshakeRate)
                    var opened = [UserClientSession]()
                    for i in stride(from: w, to: sessions, by: nAddresses) {
                        try await pace.wait()
                        do {
                            opened.append(
                                try await UserPortClient.connect(
                                    address: address, agent: agent, deviceKey: keys[i], timeout: timeout, localAddress: source(w)))
                        } catch {
                            for s in opened { s.close() }
                            throw BenchError("idle session of device \(i): \(error)")
                        }
                    }
                    return opened
                }
            }
            var all = [UserClientSession]()
            do {
                for try await part in g { all += part }
            } catch {
                for s in all { s.close() }
                throw error
            }
            return all
        }
        defer { for s in idle { s.close() } }
        r.openSeconds = now() - openStart
        r.openConnections = try await connections(port: userPort, until: { $0 >= sessions }, timeout: timeout)
        guard r.openConnections >= sessions else {
            var open = 0
            for s in idle {
                if await s.isOpen { open += 1 }
            }
            throw BenchError(
                "serve holds \(r.openConnections) connections on the user port, not the \(sessions) sessions opened (\(open) open here)")
        }
        r.rssOpen = try rss(serve.pid)

        // A fresh session's pings beside them.
        r.idle += try await ping(
            address: address, agent: agent, key: fresh, count: pings, serve: serve, timeout: timeout, counting: &counts,
            atEnd: { r.connectionsAfterPings = try serveConnections(port: userPort) })
        for s in idle {
            if await s.isOpen { r.idleStillOpen += 1 }
        }

        // Closed: once serve has let go of every connection.
        for s in idle { s.close() }
        let left = try await connections(port: userPort, until: { $0 == 0 }, timeout: timeout)
        guard left == 0 else { throw BenchError("serve still holds \(left) connections on the user port \(Int(timeout)) s after they closed") }
        r.rssClosed = try rss(serve.pid)

        // And with none again.
        r.none += try await ping(address: address, agent: agent, key: fresh, count: pings, serve: serve, timeout: timeout, counting: &counts)
        (r.sent, r.answered, r.firstFailure) = (counts.sent, counts.answered, counts.firstFailure)
        return r
    }

    /// The source address of worker `w`: 127.0.0.2, 127.0.0.3, …
    static func source(_ w: Int) -> String { "127.0.0.\(2 + w)" }

    /// A user ticket for `cuid` (ChipStore, as the CLI issues it), then the
    /// device's registration; a refusal is retried twice with a new ticket.
    static func register(
        store: SiteStore, cuid: CUID, key: KeyPair, name: String, from local: String, pace: inout Pacer, timeout: Double
    ) async throws -> UserTicket {
        var last = ""
        for _ in 0..<3 {
            let ticket = try await onThread {
                try store.issueUserTicket(cuid: cuid, scopes: nil, lifetime: nil, now: Int64(now() * 1000))
            }
            try await pace.wait()
            do {
                _ = try await UserPortClient.register(ticket: ticket, deviceName: name, deviceKey: key, timeout: timeout, localAddress: local)
                return ticket
            } catch {
                last = "\(error)"
            }
        }
        throw BenchError("register \(name) of \(cuid): \(last)")
    }

    struct PingCounts {
        var sent = 0, answered = 0
        var firstFailure: String?
    }

    /// A fresh session's timed pings: round trips, and serve's CPU seconds during them.
    struct Pings {
        var latencies = [Double]()
        var cpu = 0.0
        static func += (a: inout Pings, b: Pings) {
            a.latencies += b.latencies
            a.cpu += b.cpu
        }
        var sorted: [Double] { latencies.sorted() }
        var cpuPerPing: Double { cpu / Double(max(1, latencies.count)) }
    }

    /// A fresh session for `key` (from 127.0.0.1) and `count` pings after 20
    /// to warm up; every ping counted in `result`; the timed ones' round trips.
    static func ping(
        address: SiteAddress, agent: AgentID, key: KeyPair, count: Int, serve: ServeChild, timeout: Double, counting result: inout PingCounts,
        atEnd: () throws -> Void = {}
    ) async throws -> Pings {
        var into = [Double]()
        let s = try await BenchSession.open(address: address, agent: agent, key: key, name: "fresh", timeout: timeout)
        var cpu0 = Double.nan
        pinging: for n in 0..<(20 + count) {
            if n == 20 { cpu0 = serve.cpuSeconds() ?? .nan }
            let t0 = DispatchTime.now().uptimeNanoseconds
            let outcome = await s.call("ping")
            let elapsed = Figures.seconds(since: t0)
            result.sent += 1
            switch outcome {
            case .reply(let reply) where reply["ok"]?.boolValue == true:
                result.answered += 1
                if n >= 20 { into.append(elapsed) }
            case .reply(let reply):
                if result.firstFailure == nil { result.firstFailure = reply.canonicalString }
            case .closed:
                if result.firstFailure == nil { result.firstFailure = "the session closed" }
                break pinging
            case .timedOut:
                if result.firstFailure == nil { result.firstFailure = "no reply in \(Int(timeout)) s" }
            }
        }
        let cpu = (serve.cpuSeconds() ?? .nan) - cpu0
        try atEnd()
        await s.close()
        return Pings(latencies: into, cpu: cpu)
    }

    /// serve's VmRSS in KiB, from /proc/PID/status.
    static func rss(_ pid: Int32) throws -> Double {
        let status = procFile("/proc/\(pid)/status") ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, let kib = Double(fields[1]) { return kib }
        }
        throw BenchError("no VmRSS in /proc/\(pid)/status (serve stopped?)")
    }

    /// The connections serve holds on the user port (/proc/net/tcp: local
    /// port `port`, established or closing on the peer's side).
    static func serveConnections(port: Int) throws -> Int {
        guard let table = procFile("/proc/net/tcp") else { throw BenchError("cannot read /proc/net/tcp") }
        var n = 0
        for line in table.split(separator: "\n").dropFirst() {
            let f = line.split(separator: " ")
            guard f.count > 3, let colon = f[1].lastIndex(of: ":"), let local = Int(f[1][f[1].index(after: colon)...], radix: 16) else { continue }
            // 01 ESTABLISHED, 08 CLOSE_WAIT (the device closed, serve not yet).
            if local == port, f[3] == "01" || f[3] == "08" { n += 1 }
        }
        return n
    }

    /// A file of /proc read to its end (their size reads as 0, and a
    /// single read returns one page of /proc/net/tcp).
    static func procFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `serveConnections` once it satisfies `done`, or after `timeout` seconds.
    static func connections(port: Int, until done: (Int) -> Bool, timeout: Double) async throws -> Int {
        let deadline = now() + timeout
        var n = try serveConnections(port: port)
        while !done(n), now() < deadline {
            try await Task.sleep(nanoseconds: 20_000_000)
            n = try serveConnections(port: port)
        }
        return n
    }

    // MARK: Printing

    static func report(_ r: Result, pings: Int) {
        let mib = { (kib: Double) in fmt(kib / 1024, 11, decimals: 1) }
        let noneCount = r.none.latencies.count, idleCount = r.idle.latencies.count
        print("")
        print(
            "4. 1 chipsite serve on 127.0.0.1 (c): \(r.devices) devices registered, \(r.sessions) sessions open and idle; "
                + "serve's RSS, and a fresh session's \(pings) pings beside the same with no idle session (as many before them, as many after)")
        print(pad("", 44) + "     figure      ceiling   ratio")
        print(
            pad("ping p50, fresh session, \(r.sessions) idle (µs)", 44) + fmt(r.p50 * 1e6, 11) + fmt(r.none50 * 1e6, 13)
                + fmt(r.none50 / r.p50, 8, decimals: 2)
                + "   ceiling = the same pings with no idle session (before and after); ratio = ceiling / figure")
        print(
            pad("ping p99, fresh session, \(r.sessions) idle (µs)", 44) + fmt(r.p99 * 1e6, 11) + fmt(r.none99 * 1e6, 13)
                + fmt(r.none99 / r.p99, 8, decimals: 2))
        print(pad("serve RSS after start, no device (MiB)", 44) + mib(r.rssStart))
        print(pad("serve RSS, \(r.devices) devices registered (MiB)", 44) + mib(r.rssRegistered))
        print(pad("serve RSS, \(r.sessions) sessions open, idle (MiB)", 44) + mib(r.rssOpen))
        print(pad("  per idle session (KiB)", 44) + fmt(r.perSession, 11, decimals: 1) + "   (RSS with them − RSS registered) / \(r.sessions)")
        print(pad("serve RSS after closing them (MiB)", 44) + mib(r.rssClosed))
        print("")
        print(
            "  idle: \(r.devices) devices of \(r.users) users registered (a user ticket each, ChipStore) in \(String(format: "%.1f", r.registerSeconds)) s, "
                + "\(r.sessions) sessions opened in \(String(format: "%.1f", r.openSeconds)) s, from \(r.addresses) loopback addresses; "
                + "serve held \(r.openConnections) connections with them open, \(r.connectionsAfterPings) at the end of the fresh session's pings, "
                + "\(r.idleStillOpen) of \(r.sessions) idle sessions still open after")
        print(
            "  fresh session's pings: \(pings) timed with them open (\(idleCount) answered), \(noneCount) with none (before and after); "
                + "serve CPU per ping \(us(r.idle.cpuPerPing)) µs with them open, \(us(r.none.cpuPerPing)) µs with none; "
                + (r.answered == r.sent
                    ? "every ping answered (\(r.answered), warm-ups included)"
                    : "\(r.sent - r.answered) of \(r.sent) NOT answered, first: \(r.firstFailure ?? "?")"))
    }

    static func json(_ r: Result) -> [String: Any] {
        [
            "devices": r.devices, "sessions": r.sessions, "users": r.users, "addresses": r.addresses,
            "rss_start_kib": num(r.rssStart), "rss_registered_kib": num(r.rssRegistered), "rss_open_kib": num(r.rssOpen),
            "rss_closed_kib": num(r.rssClosed), "rss_per_session_kib": num(r.perSession),
            "register_seconds": num(r.registerSeconds), "open_seconds": num(r.openSeconds),
            "ping_p50_us": num(r.p50 * 1e6), "ping_p99_us": num(r.p99 * 1e6), "ping_none_p50_us": num(r.none50 * 1e6),
            "ping_none_p99_us": num(r.none99 * 1e6),
            "serve_cpu_us_per_ping": num(r.idle.cpuPerPing * 1e6), "serve_cpu_us_per_ping_none": num(r.none.cpuPerPing * 1e6),
            "ratio_p50": num(r.none50 / r.p50), "ratio_p99": num(r.none99 / r.p99),
            "pings_sent": r.sent, "pings_answered": r.answered, "open_connections": r.openConnections,
            "connections_during_pings": r.connectionsAfterPings, "idle_still_open": r.idleStillOpen
        ]
    }
}

/// Paces handshakes from one address below the port's rate.
struct Pacer {
    let interval: Double
    private var next = 0.0

    init(rate: Double) { interval = 1 / rate }

    mutating func wait() async throws {
        let t = now()
        if next > t { try await Task.sleep(nanoseconds: UInt64((next - t) * 1e9)) }
        next = max(next, t) + interval
    }
}
