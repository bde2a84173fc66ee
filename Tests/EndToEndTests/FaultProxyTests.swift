import Foundation
import Synchronization
import Testing
import TestSupport

/// Two real `chipsite serve` processes that reach each other only through
/// fault-injecting proxies (FaultProxy.swift): each site's address (the port
/// in its CHAD) is its proxy's, while serve listens on another port. Both
/// directions are faulted: connections cut at random points, writes split,
/// delays, stalls, first flights replayed.
///
/// `FAULT_SEED=N` (environment) replays the proxies' plans of a failing run;
/// the seed is printed at the start.
@Suite(.serialized) struct FaultProxyTests {
    static let defaultSeed: UInt64 = 20_261_124

    /// Payments each way; `chipsite pay` costs about 50 ms.
    /// Payments each way: 200, or 500 with `CHIPSITE_LONG=1`.
    static let each = ProcessInfo.processInfo.environment["CHIPSITE_LONG"] != nil ? 500 : 200

    struct ProxiedPair {
        let dir: TempDir
        let a: E2ESite, b: E2ESite
        let realA: Int, realB: Int
        let proxyA: FaultProxy, proxyB: FaultProxy

        init(seed: UInt64, settings: FaultSettings) throws {
            dir = try TempDir()
            realA = freePort()
            realB = freePort()
            proxyA = try FaultProxy(name: "to-a", target: realA, seed: seed, settings: settings)
            proxyB = try FaultProxy(name: "to-b", target: realB, seed: seed &+ 1, settings: settings)
            a = try E2ESite(dir: dir, name: "a", user: "alice", port: proxyA.port)
            b = try E2ESite(dir: dir, name: "b", user: "bob", port: proxyB.port)
        }

        func serve() throws -> (ServeProcess, ServeProcess) {
            (try ServeProcess(db: a.db, port: realA), try ServeProcess(db: b.db, port: realB))
        }

        func stopProxies() {
            proxyA.stop()
            proxyB.stop()
        }

        var faults: String { "proxy to a: \(proxyA.stats); proxy to b: \(proxyB.stats)" }

        var recent: String {
            "to a: \(proxyA.recent.suffix(15).joined(separator: "; "))\nto b: \(proxyB.recent.suffix(15).joined(separator: "; "))"
        }

        func field(_ site: E2ESite, _ id: String, _ key: String) -> Any? { (try? site.tally(id))?[key] }

        func converged(_ id: String, length: Int) -> Bool {
            guard let ta = try? a.tally(id), let tb = try? b.tally(id) else { return false }
            return ta["chain_length"] as? Int == length && tb["chain_length"] as? Int == length
                && ta["chain_head"] as? String == tb["chain_head"] as? String
        }
    }

    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["FAULT_SEED"].flatMap(UInt64.init) ?? defaultSeed
    }

    @Test func tallyAndPaymentsBothWaysConvergeThroughFaultyProxies() throws {
        let seed = Self.seed
        print("FaultProxyTests: seed \(seed) (FAULT_SEED=\(seed) replays it)")
        let started = Date()
        let p = try ProxiedPair(seed: seed, settings: FaultSettings())
        defer { p.stopProxies() }
        let (sa, sb) = try p.serve()
        defer { sa.stop(); sb.stop() }

        // The tally dialog: ticket → request → offer → accept → open on both sides.
        var requested = false
        for attempt in 1...4 where !requested {
            let request = try p.a.cli(["tally", "request", "alice", try p.b.ticket(["--limit", "100000"]), "--json", "--wait", "30"])
            if request.code == 0 { requested = true; break }
            try #require(request.stderr.contains("refused the ticket"), "seed \(seed): tally request failed: \(request.stderr)")
            // A cut during the first contact (IK) looks like the issuer's silent
            // refusal; the requesting site tries again and gives up only after
            // three closes in a row, which this proxy can still cause. Then a
            // person asks again with a new ticket, and so does this test.
            print("seed \(seed), attempt \(attempt): \(request.stderr)")
        }
        try #require(requested, "seed \(seed): no request got through\n\(p.recent)")
        var offer: String?
        _ = eventually(30) {
            offer = (try? p.a.tallies())?.first { $0["state"] as? String == "P.offer" }?["id"] as? String
            return offer != nil
        }
        let id = try #require(offer, "seed \(seed): no offer: \((try? p.a.tallies()) ?? [])\n\(p.recent)")
        let accepted = try p.a.cli(["tally", "accept", id])
        try #require(accepted.code == 0, "\(accepted.stderr)")
        let open = eventually(30) {
            p.field(p.a, id, "state") as? String == "open" && p.field(p.b, id, "state") as? String == "open"
        }
        let states = "a \(String(describing: p.field(p.a, id, "state"))), b \(String(describing: p.field(p.b, id, "state")))"
        try #require(open, "seed \(seed): the tally did not open on both sides: \(states)\n\(p.recent)")
        for site in [p.a, p.b] { #expect(p.field(site, id, "signatures_valid") as? Bool == true) }

        // Alice (foil) pays first so that bob (stock, granted no credit) has a
        // balance to pay back from, whatever order the two sites see.
        #expect(try p.a.cli(["pay", "alice", id, "300"]).code == 0)
        try #require(eventually(30) { p.converged(id, length: 1) }, "seed \(seed): the first payment did not arrive\n\(p.recent)")

        // Then both pay at once, each from its own site.
        let failures = Mutex([String]())
        let (siteA, siteB, each) = (p.a, p.b, Self.each)
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            let (site, user, amount) = worker == 0 ? (siteA, "alice", "1") : (siteB, "bob", "0.5")
            for _ in 0..<each {
                let r = try? site.cli(["pay", user, id, amount])
                if r?.code != 0 { failures.withLock { $0.append(r?.stderr ?? "no result") } }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(3) })")
        let paid = Date().timeIntervalSince(started)

        // Both chains converge through the faults, with no manual step.
        let total = 2 * each + 1
        let converged = eventually(90) { p.converged(id, length: total) }
        #expect(
            converged,
            """
            seed \(seed): chains a \(String(describing: p.field(p.a, id, "chain_length"))), \
            b \(String(describing: p.field(p.b, id, "chain_length"))) of \(total)
            \(p.faults)
            \(p.recent)
            """)
        let ta = try p.a.tally(id), tb = try p.b.tally(id)
        // Same signed number on both sides: positive, the foil (alice) owes the stock (bob).
        #expect(ta["balance"] as? Int == 300_000 + each * 1000 - each * 500)
        #expect(ta["balance"] as? Int == tb["balance"] as? Int)
        #expect(ta["chain_head"] as? String == tb["chain_head"] as? String)
        for site in [p.a, p.b] {
            let v = try site.cli(["tally", "verify", id, "--json"])
            #expect(v.code == 0, "\(v.stdout)")
            #expect(try json(v.stdout)["ok"] as? Bool == true, "\(v.stdout)")
            let chits =
                try json(try site.cli(["chit", "list", "--tally", id, "--limit", "5000", "--json"]).stdout)["chits"]
                as? [[String: Any]] ?? []
            #expect(chits.count == total, "no chit lost or doubled")
            #expect(Set(chits.compactMap { $0["id"] as? String }).count == total)
            #expect(chits.allSatisfy { $0["state"] as? String == "chained" })
        }
        // The faults really happened.
        let sa1 = p.proxyA.stats, sb1 = p.proxyB.stats
        #expect(sa1.dropped + sb1.dropped > 0 && sa1.splits + sb1.splits > 0 && sa1.duplicates + sb1.duplicates > 0, "\(p.faults)")
        // How often each site applied a tally `open` (2 or 3 without loops; see PropertyTests' KnownBug.openPingPong).
        let opens = [p.a, p.b].map {
            ((try? String(contentsOfFile: $0.db + ".log", encoding: .utf8)) ?? "").components(separatedBy: "tally open").count - 1
        }
        print(
            "FaultProxyTests: seed \(seed): payments in \(Int(paid)) s, converged in \(Int(Date().timeIntervalSince(started))) s; "
                + "tally open applied \(opens[0])× on a, \(opens[1])× on b; \(p.faults)")
    }

    /// The proxy itself: bytes arrive intact and in order through splits,
    /// delays and stalls; cuts end connections; it stops within its bound.
    @Test func theProxyForwardsIntactAndStopsCleanly() throws {
        let echo = try EchoServer()
        defer { echo.stop() }
        var settings = FaultSettings()
        settings.dropChance = 0
        settings.splitChance = 0.5
        settings.delayChance = 0.3
        settings.stallChance = 0.5
        settings.stall = 0.05...0.2
        settings.duplicateChance = 0.5
        let proxy = try FaultProxy(name: "echo", target: echo.port, seed: Self.seed, settings: settings)
        for n in 0..<6 {
            let payload = (0..<(1000 * (n + 1))).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n) }
            #expect(try roundTrip(port: proxy.port, payload) == payload, "connection \(n)")
        }
        #expect(proxy.stats.splits > 0, "\(proxy.stats)")
        let t0 = Date()
        proxy.stop()
        #expect(Date().timeIntervalSince(t0) < 2)
        // Stopped: nothing is carried any more.
        #expect((try? roundTrip(port: proxy.port, [1, 2, 3])) ?? [] != [1, 2, 3])
    }
}

// MARK: - A loopback echo server for the proxy's own test

/// Echoes every connection's bytes back (one thread per connection, bounded).
final class EchoServer: Sendable {
    let port: Int
    private let fd: Int32
    private let stopping = Mutex(false)

    init() throws {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, len) } }
        guard ok == 0, listen(sock, 16) == 0 else { close(sock); throw RunError("echo: cannot listen") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        fd = sock
        let listener = sock
        Thread.detachNewThread { [self] in
            while !stopping.withLock({ $0 }) {
                var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 100) > 0 else { continue }
                let c = accept(listener, nil, nil)
                guard c >= 0 else { continue }
                Thread.detachNewThread {
                    defer { close(c) }
                    var buf = [UInt8](repeating: 0, count: 4096)
                    let end = Date().addingTimeInterval(10)
                    while Date() < end {
                        var p = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
                        guard poll(&p, 1, 100) > 0 else { continue }
                        let n = buf.withUnsafeMutableBytes { read(c, $0.baseAddress, $0.count) }
                        if n <= 0 { return }
                        var off = 0
                        while off < n {
                            let w = buf[off..<n].withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                            if w <= 0 { return }
                            off += w
                        }
                    }
                }
            }
            close(listener)
        }
    }

    func stop() { stopping.withLock { $0 = true } }
}

/// Sends `payload` to 127.0.0.1:`port` and reads as many bytes back (at most 10 s).
func roundTrip(port: Int, _ payload: [UInt8]) throws -> [UInt8] {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    let ok = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard ok == 0 else { throw RunError("connect failed") }
    let sent = payload.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    guard sent == payload.count else { throw RunError("short write") }
    var got = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 4096)
    let end = Date().addingTimeInterval(10)
    while got.count < payload.count, Date() < end {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 100) > 0 else { continue }
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        got += buf[0..<n]
    }
    return got
}
