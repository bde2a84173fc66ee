// site-bench: one real `chipsite serve` process under load from this process.
//
//   swift build -c release --product chipsite && swift build -c release --product site-bench
//   .build/release/site-bench [--binary PATH] [--seconds S] [--clients N] [--channels N] [--identities N] [--cycles N]
//   .build/release/site-bench load [--clients 1000] [--seconds 20] ...   (the load test: LoadTest.swift)
//
// Creates a site file in a temporary directory, raises its peer limits so the
// rate limiter is not what is measured, starts `chipsite serve` on 127.0.0.1
// and drives it over TCP with ChipChannel's ChannelMachine on blocking
// sockets, several threads. Measures IK and N+KK handshakes accepted per
// second, open/open round trips over one channel, and the server's resident
// memory idle and with many idle open channels. Every figure is printed
// beside the raw ceiling measured in the same run (the Noise module alone,
// both handshake sides on one thread; raw libsodium ChaCha20-Poly1305).
// The child process and the directory are removed on exit, on error and on
// SIGINT/SIGTERM.
import ChipPeer
import ChipChannel
import ChipModel
import ChipProtocol
import ChipStore
import CSodium
import Dispatch
import Foundation
import Synchronization

/// Command-line settings.
struct Options {
    var binary = ".build/release/chipsite"
    /// Seconds of each measured load phase.
    var seconds = 3.0
    /// Load-generator threads for the handshake phases and for opening channels.
    var clients = 4
    /// Idle channels to hold open for the memory figure.
    var channels = 10_000
    /// Client sites (each with an open tally with the server's user).
    var identities = 32
    /// Open/close cycles of the idle channels (the memory given back, and kept, over cycles).
    var cycles = 1
    /// Seconds any single socket read or write may wait.
    var timeout = 10.0

    init(_ args: [String]) throws {
        var flags = FlagReader(args, from: 1)
        while let flag = flags.next() {
            switch flag {
            case "--binary": binary = try flags.value()
            case "--seconds": seconds = try flags.number(0.2...600)
            case "--clients": clients = Int(try flags.number(1...256))
            case "--channels": channels = Int(try flags.number(0...1_000_000))
            case "--identities": identities = Int(try flags.number(1...10_000))
            case "--cycles": cycles = Int(try flags.number(1...100))
            case "-h", "--help":
                print("usage: site-bench [--binary PATH] [--seconds S] [--clients N] [--channels N] [--identities N] [--cycles N]")
                exit(0)
            default: throw BenchError("unknown argument \(flag)")
            }
        }
    }
}

/// Reads `--flag value` arguments for the benches' options, one flag at a time.
struct FlagReader {
    private let args: [String]
    private var i: Int
    private var flag = ""

    /// Starts at `args[start]` (after the program name, or a mode such as "load").
    init(_ args: [String], from start: Int) {
        self.args = args
        i = start
    }

    /// The next flag, nil at the end.
    mutating func next() -> String? {
        guard i < args.count else { return nil }
        flag = args[i]
        i += 1
        return flag
    }

    /// The value after the current flag.
    mutating func value() throws -> String {
        guard i < args.count else { throw BenchError("\(flag) needs a value") }
        i += 1
        return args[i - 1]
    }

    /// The value after the current flag, a number within `range`.
    mutating func number(_ range: ClosedRange<Double>) throws -> Double {
        guard let d = Double(try value()), range.contains(d) else {
            throw BenchError("\(flag) must be a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return d
    }
}

/// What must be undone however the bench ends: the child and the directory.
final class Cleanup: Sendable {
    private let state = Mutex<(pid: Int32?, dir: String?)>((nil, nil))
    func track(pid: Int32) { state.withLock { $0.pid = pid } }
    func track(dir: String) { state.withLock { $0.dir = dir } }
    func untrackPid() { state.withLock { $0.pid = nil } }

    /// Kills the child if still tracked and removes the directory. Idempotent.
    func run() {
        let (pid, dir) = state.withLock { s in
            defer { s = (nil, nil) }
            return (s.pid, s.dir)
        }
        if let pid { kill(pid, SIGKILL) }
        if let dir { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// On SIGINT or SIGTERM: clean up, say so, exit 130. Keep the sources
    /// alive while they should act; cancel them when done.
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

/// The server site as the bench knows it.
struct ServerSite {
    let agent: AgentID
    /// The inviting user's CHAD, as a ticket names it.
    let inviter: CHAD
    let token: String
    let port: Int
}

enum SiteBench {
    static func main() -> Int32 {
        // `site-bench load ...`: the load test (LoadTest.swift).
        if CommandLine.arguments.dropFirst().first == "load" { return LoadTest.main(Array(CommandLine.arguments.dropFirst())) }
        let options: Options
        do { options = try Options(CommandLine.arguments) } catch {
            print("site-bench: error: \(error)")
            return 2
        }
        guard sodium_init() >= 0 else { print("site-bench: error: libsodium init failed"); return 1 }
        let cleanup = Cleanup()
        let signals = cleanup.onStopSignals(name: "site-bench")
        defer { signals.forEach { $0.cancel() }; cleanup.run() }
        do {
            try run(options, cleanup: cleanup)
            return 0
        } catch {
            print("site-bench: error: \(error)")
            return 1
        }
    }

    // MARK: Setup

    /// Makes the server's site file: one user, one reusable ticket, limits
    /// raised so the rate limiter and connection cap are not what is measured.
    static func makeSite(at path: String, channels: Int) throws -> (agent: AgentID, user: CUID, token: String) {
        let store = try SiteStore.create(at: path, address: try SiteAddress(host: "127.0.0.1", port: SiteAddress.defaultPort), passphrase: nil)
        let user = try CUID("bench")
        try store.addUser(cuid: user, name: "Bench Server", email: nil, sealingKey: nil)
        let day: Int64 = 86_400_000
        let expires = Int64(Date().timeIntervalSince1970 * 1000) + day
        let ticket = try store.issueTicket(cuid: user, expiresAt: expires, reuse: true, bound: nil, terms: .object([:]))
        try store.setConfigValue(.peerHandshakeRate, "100000")
        try store.setConfigValue(.peerHandshakeBurst, "100000")
        try store.setConfigValue(.peerMaxConnections, String(max(2 * channels, 1024)))
        // Idle channels must outlive the memory measurement.
        try store.setConfigValue(.peerIdleTimeout, "3600")
        return (try store.agent(), user, ticket.token)
    }

    /// First contact and the whole tally dialog for `me` (protocol section 6):
    /// ticket in IK, the server's offer, our signed `open`, its `open` back.
    /// Leaves an open tally (so `me` is a partner for N+K) and an empty outbox.
    /// Returns our `open` message, which the server answers again each time.
    static func openTally(_ me: ClientIdentity, site: ServerSite, timeout: Double) throws -> JSONValue {
        var channel = try ClientChannel.firstContact(
            me, server: site.agent, ticket: me.ticketMessage(token: site.token, inviter: site.inviter),
            port: site.port, timeout: timeout)
        defer { channel.close() }
        let offer = try channel.receive()
        guard offer["action"]?.stringValue == "offer", let object = offer["object"], let from = offer["from"], let to = offer["to"] else {
            throw BenchError("expected an offer, got \(offer["action"]?.stringValue ?? "?")")
        }
        let (core, sign) = try TallyObject.parse(object)
        let mySide: TallySide = core.foilCert.chad.agent == me.local.agent ? .foil : .stock
        guard core.cert(mySide).chad == me.chad, core.verify(sign[mySide.other], by: mySide.other) else {
            throw BenchError("the server's offer does not name us or does not verify")
        }
        var signed = sign
        signed[mySide] = core.sign(with: me.userKey)
        let open: JSONValue = .object(["target": "tally", "action": "open", "to": from, "from": to, "object": TallyObject.make(core, signed)])
        try channel.send(open)
        let answer = try channel.receive()
        guard answer["action"]?.stringValue == "open", answer["object"]?["uuid"]?.stringValue == core.uuid else {
            throw BenchError("expected the server's open, got \(answer["action"]?.stringValue ?? "?")")
        }
        return open
    }

    /// `message` with a top-level `pad` string that brings its canonical form
    /// to `size` bytes; the server reads only the fields it knows. Unchanged
    /// when it is already that large.
    static func padded(_ message: JSONValue, to size: Int) -> JSONValue {
        guard var o = message.objectValue else { return message }
        let base = message.canonicalBytes.count
        // ,"pad":"" is 9 bytes.
        guard base + 9 < size else { return message }
        o["pad"] = .string(String(repeating: "x", count: size - base - 9))
        return .object(o)
    }

    // MARK: Run

    static func run(_ options: Options, cleanup: Cleanup) throws {
        let fdLimit = PeerLimits.raiseDescriptorLimit()  // the serve child inherits it
        let dir = try TempDir()
        cleanup.track(dir: dir.path)
        let db = dir.file("site.db")
        let made = try makeSite(at: db, channels: options.channels)

        let server = try ServeChild(binary: options.binary, db: db, logPath: dir.file("serve.log"), home: dir.path)
        cleanup.track(pid: server.pid)
        defer {
            let status = server.stop()
            cleanup.untrackPid()
            if status != 0 { print("site-bench: note: serve exited with status \(status)") }
        }
        guard server.agent == made.agent.description else { throw BenchError("serve reports agent \(server.agent), the file holds \(made.agent)") }
        let site = ServerSite(
            agent: made.agent, inviter: CHAD(cuid: made.user, agent: made.agent, address: try SiteAddress(host: "127.0.0.1", port: server.port)),
            token: made.token, port: server.port)
        Thread.sleep(forTimeInterval: 0.5)
        let idleRSS = server.residentKiB() ?? 0

        // Client sites, each with an open tally with the server's user.
        let date = Timestamp.format(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000))
        var identities: [ClientIdentity] = []
        var opens: [JSONValue] = []
        for i in 0..<options.identities {
            let me = try ClientIdentity(index: i, date: date)
            opens.append(try openTally(me, site: site, timeout: options.timeout))
            identities.append(me)
        }
        let clients = identities
        let tickets = clients.map { $0.ticketMessage(token: site.token, inviter: site.inviter) }
        let rawIKBefore = try Ceiling.ik(payloadBytes: tickets[0].canonicalBytes.count)
        let rawNKKBefore = try Ceiling.nkk()
        let loadAverage =
            (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"

        print(
            "site-bench: chipsite serve (pid \(server.pid)) on 127.0.0.1:\(server.port); load generator in this process;"
                + " \(ProcessInfo.processInfo.activeProcessorCount) CPUs shared by both")
        print(
            "  \(options.clients) client threads, \(options.identities) client sites, \(fmt(options.seconds, 0, decimals: 1)) s per phase,"
                + " descriptor limit \(fdLimit); load average before: \(loadAverage)")
        print("")

        // MARK: Handshakes
        let timeout = options.timeout
        let ik: @Sendable (Int, Int) throws -> Void = { t, i in
            let k = (t * 7919 + i) % clients.count
            var channel = try ClientChannel.firstContact(clients[k], server: site.agent, ticket: tickets[k], port: site.port, timeout: timeout)
            channel.close()
        }
        let nkk: @Sendable (Int, Int) throws -> Void = { t, i in
            let k = (t * 7919 + i) % clients.count
            var channel = try ClientChannel.laterContact(clients[k], server: site.agent, port: site.port, timeout: timeout)
            channel.close()
        }
        let warmup = min(0.5, options.seconds)
        _ = Load.repeated(threads: options.clients, seconds: warmup, server: server, timeout: timeout, ik)
        let ikResult = Load.repeated(threads: options.clients, seconds: options.seconds, server: server, timeout: timeout, ik)
        _ = Load.repeated(threads: options.clients, seconds: warmup, server: server, timeout: timeout, nkk)
        let nkkResult = Load.repeated(threads: options.clients, seconds: options.seconds, server: server, timeout: timeout, nkk)

        // MARK: Round trips
        let message = padded(opens[0], to: 1024)
        let messageBytes = message.canonicalBytes.count
        let uuid = opens[0]["object"]?["uuid"]?.stringValue ?? ""
        var channel = try ClientChannel.laterContact(clients[0], server: site.agent, port: site.port, timeout: timeout)
        defer { channel.close() }
        func roundTrip() throws {
            try channel.send(message)
            let answer = try channel.receive()
            guard answer["action"]?.stringValue == "open", answer["object"]?["uuid"]?.stringValue == uuid else {
                throw BenchError("round trip answered with \(answer["action"]?.stringValue ?? "?")")
            }
        }
        for _ in 0..<200 { try roundTrip() }
        var latencies: [Double] = []
        latencies.reserveCapacity(100_000)
        let clock = ContinuousClock()
        let serverCPU0 = server.cpuSeconds() ?? 0, clientCPU0 = ownCPUSeconds()
        let tStart = clock.now
        while seconds(clock.now - tStart) < options.seconds {
            let t0 = clock.now
            try roundTrip()
            latencies.append(seconds(clock.now - t0) * 1000)
        }
        let tElapsed = seconds(clock.now - tStart)
        let rt = LoadResult(
            ok: latencies.count, failed: 0, seconds: tElapsed, serverCPU: (server.cpuSeconds() ?? 0) - serverCPU0,
            clientCPU: ownCPUSeconds() - clientCPU0, firstError: nil)
        latencies.sort()
        func percentile(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        channel.close()
        Thread.sleep(forTimeInterval: 0.5)
        let loadedRSS = server.residentKiB() ?? 0

        // MARK: Idle channels
        let baseFDs = server.openDescriptors() ?? 0
        let (held, openError, openSeconds) = holdChannels(options.channels, clients: clients, site: site, threads: options.clients, timeout: timeout)
        Thread.sleep(forTimeInterval: 2)
        let heldRSS = server.residentKiB() ?? 0
        let heldFDs = server.openDescriptors() ?? 0
        let alive = server.isRunning
        // One more round trip on a fresh channel: the server still answers with them all open.
        var stillAnswers = false
        if alive, var probe = try? ClientChannel.laterContact(clients[0], server: site.agent, port: site.port, timeout: timeout) {
            if (try? probe.send(message)) != nil, let answer = try? probe.receive() { stillAnswers = answer["action"]?.stringValue == "open" }
            probe.close()
        }
        let firstClose = closeChannels(held, server: server, baseFDs: baseFDs)
        Thread.sleep(forTimeInterval: 2)
        let afterRSS = server.residentKiB() ?? 0
        // More open/close cycles: what serve keeps of channels it no longer holds.
        var cycles: [(held: Int, heldRSS: Int, close: CloseResult, afterRSS: Int)] = [(held.count, heldRSS, firstClose, afterRSS)]
        for _ in 1..<options.cycles {
            let (more, _, _) = holdChannels(options.channels, clients: clients, site: site, threads: options.clients, timeout: timeout)
            Thread.sleep(forTimeInterval: 2)
            let moreRSS = server.residentKiB() ?? 0
            let close = closeChannels(more, server: server, baseFDs: baseFDs)
            Thread.sleep(forTimeInterval: 2)
            cycles.append((more.count, moreRSS, close, server.residentKiB() ?? 0))
        }

        // MARK: Ceilings
        // Measured again now that serve is idle; the better of the two runs
        // counts (other work on the machine only ever lowers a ceiling).
        let ticketBytes = tickets[0].canonicalBytes.count
        let rawIK = best(rawIKBefore, try Ceiling.ik(payloadBytes: ticketBytes))
        let rawNKK = best(rawNKKBefore, try Ceiling.nkk())
        let rawPairs = Ceiling.aeadPairs(size: messageBytes)
        let rawPairs1K = Ceiling.aeadPairs(size: 1024)
        let coreBytes = (opens[0]["object"].flatMap { try? TallyObject.parse($0) }?.0.canonicalBytes.count) ?? 0
        let rawVerify = Ceiling.verifications(size: coreBytes)
        // A round trip is two messages, each encrypted once and decrypted once.
        let rawRoundTrips = rawPairs / 2

        // MARK: Report
        print(pad("handshakes accepted", 24) + "    serve/s  raw Noise/s   ratio   serve CPU/op  raw responder/op   ratio   client CPU/op")
        func handshakeRow(_ name: String, _ r: LoadResult, _ raw: HandshakeCeiling) {
            print(
                pad("  \(name)", 24) + fmt(r.perSecond, 11) + fmt(raw.perSecond, 13) + fmt(r.perSecond / raw.perSecond, 8, decimals: 2)
                    + fmt(r.serverMicros, 12) + " µs" + fmt(raw.responderMicros, 15) + " µs"
                    + fmt(raw.responderMicros / max(r.serverMicros, 1e-9), 8, decimals: 2)
                    + fmt(r.clientMicros, 13) + " µs")
            if r.failed > 0 { print("    \(r.failed) failed; first: \(r.firstError ?? "?")") }
        }
        handshakeRow("IK (ticket, reusable)", ikResult, rawIK)
        handshakeRow("N+KK (partner)", nkkResult, rawNKK)
        print("")
        print(pad("round trips, one channel", 24) + "    serve/s   raw AEAD/s   ratio   serve CPU/op     p50 ms    p99 ms   client CPU/op")
        print(
            pad("  open, \(fmt(Double(messageBytes), 0)) B JSON", 24) + fmt(rt.perSecond, 11) + fmt(rawRoundTrips, 13)
                + fmt(rt.perSecond / rawRoundTrips, 8, decimals: 4) + fmt(rt.serverMicros, 12) + " µs"
                + fmt(percentile(0.5), 11, decimals: 2) + fmt(percentile(0.99), 10, decimals: 2) + fmt(rt.clientMicros, 13) + " µs")
        print(
            "    raw AEAD = ChaCha20-Poly1305 encrypt+decrypt of \(messageBytes) B twice per round trip;"
                + " 1 KiB pairs/s: \(fmt(rawPairs1K, 0))")
        // The open's own crypto on the server: two Ed25519 verifications of the core, one AEAD pair.
        let rawOpenMicros = 2e6 / max(rawVerify, 1) + 1e6 / max(rawPairs, 1)
        print(
            "    raw crypto of one open on the server (2 Ed25519 verify of the \(coreBytes) B core + 1 AEAD pair):"
                + " \(fmt(rawOpenMicros, 0, decimals: 1)) µs, \(fmt(rawOpenMicros / max(rt.serverMicros, 1e-9), 0, decimals: 2)) of serve CPU/op")
        print("")
        func mib(_ kib: Int) -> String { fmt(Double(kib) / 1024, 9, decimals: 1) + " MiB" }
        print("resident memory of serve (VmRSS)")
        print(pad("  idle, after start", 34) + mib(idleRSS))
        print(pad("  after the load phases", 34) + mib(loadedRSS))
        let perChannel = held.isEmpty ? 0 : Double(heldRSS - loadedRSS) / Double(held.count)
        print(
            pad("  with \(fmt(Double(held.count), 0)) idle open channels", 34) + mib(heldRSS)
                + "   (+\(fmt(perChannel, 0, decimals: 1)) KiB per channel; serve holds \(heldFDs) descriptors;"
                + " opened in \(fmt(openSeconds, 0, decimals: 1)) s; \(stillAnswers ? "still answers" : "NO ANSWER") on a fresh channel)")
        if held.count < options.channels { print("    only \(held.count) of \(options.channels) opened: \(openError ?? "?")") }
        print(pad("  after closing them", 34) + mib(afterRSS))
        print("")
        print("closing the idle channels (client resets; until serve holds its descriptors of before)")
        print("  cycle   channels   open RSS   closed in   serve CPU   per channel   RSS after")
        for (i, c) in cycles.enumerated() {
            print(
                fmt(Double(i + 1), 7) + fmt(Double(c.held), 11) + mib(c.heldRSS) + fmt(c.close.seconds, 10, decimals: 2) + " s"
                    + fmt(c.close.serverCPU, 10, decimals: 2) + " s" + fmt(c.close.serverCPU * 1e6 / Double(max(c.held, 1)), 11, decimals: 1)
                    + " µs" + mib(c.afterRSS) + (c.close.complete ? "" : "   (serve still held \(c.close.fdsLeft) descriptors)"))
        }
        if cycles.count > 1, let first = cycles.first, let last = cycles.last, first.afterRSS > 0 {
            let growth = Double(last.afterRSS - first.afterRSS) / Double(first.afterRSS) * 100
            print("  RSS after closing, cycle 1 to \(cycles.count): \(fmt(growth, 0, decimals: 1)) %")
        }
    }

    /// What closing a set of channels cost serve.
    struct CloseResult {
        var seconds: Double
        var serverCPU: Double
        var complete: Bool
        var fdsLeft: Int
    }

    /// Resets every socket in `fds` and waits (at most 120 s) until serve is
    /// back to `baseFDs` descriptors and idle: the seconds and serve CPU that took.
    static func closeChannels(_ fds: [Int32], server: ServeChild, baseFDs: Int) -> CloseResult {
        let cpu0 = server.cpuSeconds() ?? 0
        let start = Date()
        for fd in fds { FrameSocket.abort(fd) }
        var left = server.openDescriptors() ?? 0
        while left > baseFDs, Date().timeIntervalSince(start) < 120 {
            Thread.sleep(forTimeInterval: 0.01)
            left = server.openDescriptors() ?? 0
        }
        // The sockets are gone; what serve does for each close after that
        // counts too: until a tenth of a second passes with (almost) no CPU.
        var end = Date(), cpu = server.cpuSeconds() ?? 0
        while Date().timeIntervalSince(start) < 120 {
            Thread.sleep(forTimeInterval: 0.1)
            let now = server.cpuSeconds() ?? 0
            if now - cpu < 0.003 { break }
            end = Date()
            cpu = now
        }
        return CloseResult(
            seconds: end.timeIntervalSince(start), serverCPU: cpu - cpu0, complete: left <= baseFDs, fdsLeft: max(0, left - baseFDs))
    }

    /// The ceiling with the higher rate.
    static func best(_ a: HandshakeCeiling, _ b: HandshakeCeiling) -> HandshakeCeiling { a.perSecond >= b.perSecond ? a : b }

    /// Opens `count` N+KK channels on `threads` threads and keeps their
    /// sockets open without sending anything more. Returns the descriptors,
    /// the first error if fewer opened, and the seconds it took. Bounded:
    /// each thread stops after ``Load/maxConsecutiveFailures`` failures in a
    /// row or after ten minutes.
    static func holdChannels(_ count: Int, clients: [ClientIdentity], site: ServerSite, threads: Int, timeout: Double)
        -> ([Int32], String?, Double)
    {
        let claimed = Atomic<Int>(0)
        let fds = Mutex<[Int32]>([])
        let counters = LoadCounters()
        let start = Date()
        let end = start.addingTimeInterval(600)
        _ = Load.onThreads(threads, limit: 620 + timeout) { t in
            var mine: [Int32] = []
            var inARow = 0
            while Date() < end, inARow < Load.maxConsecutiveFailures {
                let n = claimed.add(1, ordering: .relaxed).newValue
                guard n <= count else { break }
                do {
                    var channel = try ClientChannel.laterContact(clients[n % clients.count], server: site.agent, port: site.port, timeout: timeout)
                    channel.machine.shutdown()
                    mine.append(channel.socket.release())
                    inARow = 0
                } catch {
                    counters.fail(error)
                    claimed.subtract(1, ordering: .relaxed)
                    inARow += 1
                }
            }
            let opened = mine
            fds.withLock { $0 += opened }
        }
        let all = fds.withLock { $0 }
        return (all, counters.firstError, Date().timeIntervalSince(start))
    }
}

// MARK: Formatting

/// `x` right-aligned in `width`, with thousands separators when `decimals` is 0.
func fmt(_ x: Double, _ width: Int, decimals: Int = 0) -> String {
    var s: String
    if !x.isFinite {
        s = "-"
    } else if decimals == 0 {
        let digits = String(Int(x.rounded()))
        var out = ""
        for (i, ch) in digits.reversed().enumerated() {
            if i > 0, i % 3 == 0, ch != "-" { out.append(",") }
            out.append(ch)
        }
        s = String(out.reversed())
    } else {
        s = String(format: "%.\(decimals)f", x)
    }
    return String(repeating: " ", count: max(0, width - s.count)) + s
}

func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }

exit(SiteBench.main())
