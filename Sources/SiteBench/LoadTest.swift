// site-bench load: a healthy partner keeps paying while 1,000 clients attack
// one `chipsite serve` with handshakes, valid and invalid mixed.
//
//   swift build -c release --product chipsite && swift build -c release --product site-bench
//   .build/release/site-bench load [--clients 1000] [--seconds 20] [--baseline 5] [--binary PATH]
//
// Not a timed unit test: a load test with figures to read. The server is a
// real `chipsite serve` child on 127.0.0.1 with the default per-address
// handshake limits (peer.handshake_rate, peer.handshake_burst); only
// peer.max_connections is raised, to hold the attackers plus the partner.
// The attackers connect from 127.0.0.2-127.0.0.9 (each socket is bound to its
// source address before connect), the healthy partner from 127.0.0.1, so the
// per-address token bucket is what keeps the partner's way in open.
//
// The healthy partner is a client site whose user holds an open tally with
// the server's user (opened through the ticket dialog; the server's user is
// the foil, so the server orders the chain). Over one N+KK channel it sends
// `chit` `tran` messages, each with one fresh chit signed by its user, and
// times each until the server's `upd` chaining that chit arrives; it checks
// every chain entry (index, prior, hash), answers `ack`, and reconnects every
// 2 s so its handshakes are exercised too. Any refused connection, failed
// handshake, closed channel or timeout is a failure, and must not happen.
import ChipPeer
import ChipChannel
import ChipModel
import ChipProtocol
import ChipStore
import CSodium
import Dispatch
import Foundation
import Glibc
import Synchronization

/// Command-line settings of `site-bench load`.
struct LoadTestOptions {
    var binary = ".build/release/chipsite"
    /// Attacking clients, each on its own thread.
    var clients = 1000
    /// Seconds of the measured attack window.
    var seconds = 20.0
    /// Seconds of the healthy partner alone, before the attack.
    var baseline = 5.0
    /// Attacker identities that are real partners of the server.
    var partners = 16
    /// Seconds any single socket read, write or connect may wait.
    var timeout = 5.0

    init(_ args: [String]) throws {
        var flags = FlagReader(args, from: 1)  // args[0] is "load"
        while let flag = flags.next() {
            switch flag {
            case "--binary": binary = try flags.value()
            case "--clients": clients = Int(try flags.number(1...5000))
            case "--seconds": seconds = try flags.number(1...300)
            case "--baseline": baseline = try flags.number(1...300)
            case "--partners": partners = Int(try flags.number(1...256))
            case "-h", "--help":
                print("usage: site-bench load [--binary PATH] [--clients N] [--seconds S] [--baseline S] [--partners N]")
                exit(0)
            default: throw BenchError("unknown argument \(flag)")
            }
        }
    }
}

// MARK: Attackers

/// What one attacking connection does.
enum AttackKind: Int, CaseIterable, Sendable {
    /// Valid: N+KK from an agent that is a partner of the server.
    case nkk
    /// Valid: IK with the reusable ticket, by a requester that redeemed it.
    case ik
    /// Invalid: random bytes.
    case garbage
    /// Invalid: a frame length outside 17...65536, or an unknown header byte.
    case badLength
    /// Invalid: N+KK naming an agent that is no partner.
    case stranger
    /// Invalid: IK whose ticket token the server never issued.
    case wrongToken
    /// Invalid: a valid N+KK first flight, one byte every 0.5 s.
    case trickle

    var name: String {
        switch self {
        case .nkk: return "N+KK, partner (valid)"
        case .ik: return "IK, reusable ticket (valid)"
        case .garbage: return "garbage bytes"
        case .badLength: return "bad frame length/header"
        case .stranger: return "N+KK, stranger"
        case .wrongToken: return "IK, wrong token"
        case .trickle: return "slow trickle, 1 B/0.5 s"
        }
    }

    var valid: Bool { self == .nkk || self == .ik }
}

/// How one attacking connection ended.
enum AttackOutcome: Int, CaseIterable {
    /// The handshake completed (`A` read and the channel open), or for an
    /// invalid attempt, the server sent anything at all.
    case completed
    /// The server closed or reset the connection first (refused at accept by
    /// the token bucket, or closed on the bad input).
    case closed
    /// A timeout or any other socket error.
    case error
}

/// Counts per kind and outcome, shared by the attacking threads.
final class AttackCounters: Sendable {
    private let counts = Mutex<[Int]>(Array(repeating: 0, count: AttackKind.allCases.count * AttackOutcome.allCases.count))
    private let firstErrors = Mutex<[Int: String]>([:])
    private let stopFlag = Atomic<Bool>(false)
    let started = Atomic<Int>(0)

    func count(_ kind: AttackKind, _ outcome: AttackOutcome) {
        counts.withLock { $0[kind.rawValue * AttackOutcome.allCases.count + outcome.rawValue] += 1 }
    }

    func note(_ kind: AttackKind, _ error: String) {
        firstErrors.withLock { if $0[kind.rawValue] == nil { $0[kind.rawValue] = error } }
    }

    func snapshot() -> [Int] { counts.withLock { $0 } }
    func firstError(_ kind: AttackKind) -> String? { firstErrors.withLock { $0[kind.rawValue] } }

    func stop() { stopFlag.store(true, ordering: .relaxed) }
    var stopped: Bool { stopFlag.load(ordering: .relaxed) }

    static func value(_ snapshot: [Int], _ kind: AttackKind, _ outcome: AttackOutcome) -> Int {
        snapshot[kind.rawValue * AttackOutcome.allCases.count + outcome.rawValue]
    }
}

/// A small per-thread random generator (xorshift64*): the mix, not security.
struct MixRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}

/// What every attacking thread shares: the server, the identities, the counters.
struct Attack: Sendable {
    let site: ServerSite
    let partners: [ClientIdentity]
    let partnerTickets: [JSONValue]
    let strangers: [ClientIdentity]
    let counters: AttackCounters
    let timeout: Double
    /// Hard end, whatever happens to the stop flag.
    let deadline: Date

    /// 127.0.0.2 to 127.0.0.9 by client number.
    static func source(_ client: Int) -> UInt32 { 0x7F00_0002 + UInt32(client % 8) }

    /// Client `n`'s loop: every tenth client trickles; the others pick one of
    /// the six fast kinds at random for every connection.
    func client(_ n: Int) {
        counters.started.add(1, ordering: .relaxed)
        var rng = MixRandom(seed: UInt64(n + 1) &* 0x9E37_79B9_7F4A_7C15)
        let fast: [AttackKind] = [.nkk, .ik, .garbage, .badLength, .stranger, .wrongToken]
        while !counters.stopped, Date() < deadline {
            let kind = n % 10 == 0 ? AttackKind.trickle : fast[Int(rng.next() % UInt64(fast.count))]
            let outcome: AttackOutcome
            do {
                outcome = try attempt(kind, source: Self.source(n), rng: &rng) ? .completed : .closed
            } catch {
                outcome = Self.isClose(error) ? .closed : .error
                if outcome == .error { counters.note(kind, "\(error)") }
            }
            counters.count(kind, outcome)
        }
    }

    /// A close or reset by the server (as opposed to a timeout or a local error).
    static func isClose(_ error: WireError) -> Bool {
        switch error {
        case .closed: return true
        case .system(let call, let code): return call != "connect" && (code == ECONNRESET || code == EPIPE)
        default: return false
        }
    }

    /// One connection of `kind`. True when the handshake completed (valid
    /// kinds) or the server answered anything (invalid kinds); false when the
    /// server closed without completing.
    func attempt(_ kind: AttackKind, source: UInt32, rng: inout MixRandom) throws(WireError) -> Bool {
        let socket = try FrameSocket(port: site.port, timeout: timeout, source: source, chunkSize: 4096)
        defer { socket.close() }
        let k = Int(rng.next() % UInt64(partners.count))
        switch kind {
        case .nkk:
            return try handshake(socket, ChannelMachine.laterContact(local: partners[k].local, remote: site.agent))
        case .ik:
            return try handshake(socket, ChannelMachine.firstContact(local: partners[k].local, remote: site.agent, ticketMessage: partnerTickets[k]))
        case .stranger:
            let s = strangers[Int(rng.next() % UInt64(strangers.count))]
            return try handshake(socket, ChannelMachine.laterContact(local: s.local, remote: site.agent))
        case .wrongToken:
            let token = Hex.encode((0..<16).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            let ticket = partners[k].ticketMessage(token: token, inviter: site.inviter)
            return try handshake(socket, ChannelMachine.firstContact(local: partners[k].local, remote: site.agent, ticketMessage: ticket))
        case .garbage:
            let count = 1 + Int(rng.next() % 200)
            try socket.write((0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            return try answered(socket)
        case .badLength:
            let frames: [[UInt8]] = [
                [0xFF, 0xFF, 0xFF, 0xFF, FrameHeader.N.rawValue],  // far above 65536
                [0x00, 0x00, 0x00, 0x05, FrameHeader.N.rawValue, 1, 2, 3, 4],  // below 17
                [0x00, 0x01, 0x00, 0x01, FrameHeader.I.rawValue],  // 65537
                [0x00, 0x00, 0x00, 0x30, 0x00] + [UInt8](repeating: 0, count: 47)  // unknown header byte
            ]
            try socket.write(frames[Int(rng.next() % UInt64(frames.count))])
            return try answered(socket)
        case .trickle:
            let (_, actions) = try channel(ChannelMachine.laterContact(local: partners[k].local, remote: site.agent))
            var bytes: [UInt8] = []
            for case .send(let frame) in actions { bytes += frame.encoded }
            // The server closes a handshake that is not done in
            // peer.handshake_timeout (10 s): far fewer bytes than this sends.
            for byte in bytes {
                if counters.stopped || Date() >= deadline { return false }
                try socket.write([byte])
                if readable(socket, within: 0.5) { return try answered(socket) }
            }
            return try answered(socket)
        }
    }

    /// Unwraps a ChannelMachine result into the wire's error type.
    private func channel(_ make: @autoclosure () throws(ChannelError) -> (ChannelMachine, [ChannelAction]))
        throws(WireError) -> (ChannelMachine, [ChannelAction])
    {
        do throws(ChannelError) { return try make() } catch { throw .channel(error) }
    }

    /// Sends the first flight and reads the answer: true once the channel is open.
    private func handshake(_ socket: FrameSocket, _ make: @autoclosure () throws(ChannelError) -> (ChannelMachine, [ChannelAction]))
        throws(WireError) -> Bool
    {
        var (machine, actions) = try channel(make())
        defer { machine.shutdown() }
        var bytes: [UInt8] = []
        for case .send(let frame) in actions { bytes += frame.encoded }
        try socket.write(bytes)
        let reply = machine.receive(try socket.receive())
        return reply.contains { if case .opened = $0 { return true } else { return false } }
    }

    /// Waits for the server's answer to bad input: false when it closes.
    private func answered(_ socket: FrameSocket) throws(WireError) -> Bool {
        _ = try socket.receive()
        return true
    }

    /// Whether the server sent something or closed within `seconds`.
    private func readable(_ socket: FrameSocket, within seconds: Double) -> Bool {
        var p = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, Int32(seconds * 1000)) > 0
    }
}

// MARK: The healthy partner

/// What the healthy partner saw in one phase.
struct PartnerResult {
    var latencies: [Double] = []
    var handshakes: [Double] = []
    /// Connections or handshakes that failed (refused, closed, timed out).
    var refused = 0
    /// Payments that failed on an open channel (closed, timed out, an
    /// undecryptable or unexpected answer).
    var broken = 0
    var failures: Int { refused + broken }
    /// The first few failures, with where on the channel they happened.
    var errors: [String] = []
    var seconds = 0.0

    func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }
}

/// A client site whose user (the stock) holds an open tally with the
/// server's user (the foil) and pays it, chit after chit.
final class HealthyPartner {
    let me: ClientIdentity
    let site: ServerSite
    let tally: String
    /// The server's user and ours, as the tally messages name them.
    let to: JSONValue
    let from: JSONValue
    let timeout: Double
    /// Our copy of the server's chain: its length and head hash.
    private(set) var length: Int64 = 0
    private(set) var head: String
    private(set) var paid = 0
    private var channel: ClientChannel?

    /// `open` is the open message of our tally (from ``SiteBench/openTally``).
    init(_ me: ClientIdentity, open: JSONValue, site: ServerSite, timeout: Double) throws {
        guard let object = open["object"], let to = open["to"], let from = open["from"] else { throw BenchError("malformed open") }
        let (core, _) = try TallyObject.parse(object)
        guard core.cert(.stock).chad == me.chad else { throw BenchError("the partner must be the stock of its tally") }
        self.me = me
        self.site = site
        self.tally = core.uuid
        self.to = to
        self.from = from
        self.timeout = timeout
        self.head = core.hash
    }

    /// Closes the channel (a reset).
    func disconnect() {
        channel?.close()
        channel = nil
    }

    /// N+KK from 127.0.0.1; returns the milliseconds it took.
    func connect() throws -> Double {
        disconnect()
        let clock = ContinuousClock()
        let t0 = clock.now
        channel = try ClientChannel.laterContact(me, server: site.agent, port: site.port, timeout: timeout)
        return seconds(clock.now - t0) * 1000
    }

    /// One payment: a fresh signed chit in `tran`, timed until the server's
    /// `upd` that chains it; every `upd` is checked and acknowledged.
    /// Returns the round trip in milliseconds.
    func pay() throws -> Double {
        guard var ch = channel else { throw BenchError("no channel") }
        defer { channel = ch }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let chit = try Chit(
            tally: tally, by: .stock, uuid: TallyCore.newUUID(), date: Timestamp.format(millisecondsSince1970: now),
            units: 1, memo: nil, ref: nil, key: me.userKey)
        let tran: JSONValue = [
            "target": "chit", "action": "tran", "to": to, "from": from,
            "object": ["tally": .string(tally), "chits": [chit.json]]
        ]
        let clock = ContinuousClock()
        let t0 = clock.now
        try ch.send(tran)
        // Bounded: each receive waits at most `timeout`; at most 100 messages.
        for _ in 0..<100 {
            let answer = try ch.receive()
            guard answer["target"]?.stringValue == "chit", answer["object"]?["tally"]?.stringValue == tally else { continue }
            switch answer["action"]?.stringValue {
            case "upd":
                let elapsed = seconds(clock.now - t0) * 1000
                let chained = try follow(answer)
                let ack: JSONValue = [
                    "target": "chit", "action": "ack", "to": to, "from": from,
                    "object": ["tally": .string(tally), "index": .integer(length), "hash": .string(head)]
                ]
                try ch.send(ack)
                if chained.contains(chit.uuid) {
                    paid += 1
                    return elapsed
                }
            case "nak":
                throw BenchError("the server refused the chit: \(answer["object"]?["refused"]?.canonicalString ?? "?")")
            default:
                continue
            }
        }
        throw BenchError("no upd for the chit in 100 messages")
    }

    /// Appends the `upd`'s entries to our copy of the chain, checking each
    /// link; returns the uuids of the chits it chained.
    private func follow(_ upd: JSONValue) throws -> Set<String> {
        var chained = Set<String>()
        for entry in upd["object"]?["entries"]?.arrayValue ?? [] {
            guard let index = entry["index"]?.integerValue, let prior = entry["prior"]?.stringValue, let hash = entry["hash"]?.stringValue,
                let chitJSON = entry["chit"]
            else { throw BenchError("malformed upd entry") }
            let chit = try Chit(json: chitJSON)
            if index <= length { continue }  // already ours (a repeat on a new channel)
            guard index == length + 1, prior == head, Chain.entryHash(index: index, prior: prior, chitHash: chit.hash) == hash,
                chit.tally == tally
            else {
                throw BenchError("upd entry \(index) does not extend our chain of \(length)")
            }
            length = index
            head = hash
            chained.insert(chit.uuid)
        }
        return chained
    }

    /// Pays for `duration` seconds, reconnecting every `reconnectEvery`
    /// seconds. Failures are counted and the channel opened again after 50 ms.
    func run(seconds duration: Double, reconnectEvery: Double) -> PartnerResult {
        var result = PartnerResult()
        result.latencies.reserveCapacity(Int(duration) * 4000)
        let start = Date()
        let end = start.addingTimeInterval(duration)
        var lastConnect = Date.distantPast
        var onChannel = 0
        while Date() < end {
            var connecting = false
            do {
                if channel == nil || Date().timeIntervalSince(lastConnect) >= reconnectEvery {
                    onChannel = 0
                    lastConnect = Date()
                    connecting = true
                    result.handshakes.append(try connect())
                    connecting = false
                }
                result.latencies.append(try pay())
                onChannel += 1
            } catch {
                if connecting { result.refused += 1 } else { result.broken += 1 }
                if result.errors.count < 5 {
                    let age = Date().timeIntervalSince(lastConnect) * 1000
                    result.errors.append("payment \(onChannel + 1) on a channel opened \(fmt(age, 0, decimals: 1)) ms before: \(error)")
                }
                disconnect()
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        result.seconds = Date().timeIntervalSince(start)
        return result
    }
}

// MARK: Sampling serve

/// Samples the server's VmRSS and descriptor count every 100 ms on its own
/// thread, keeping the peak of the current phase.
final class ServeSampler: Sendable {
    struct Peaks { var rss = 0, fds = 0 }
    private let state = Mutex<(phase: String, peaks: [String: Peaks], done: Bool)>(("setup", [:], false))
    private let finished = DispatchSemaphore(value: 0)

    init(pid: Int32) {
        let thread = Thread { [self] in
            while !state.withLock({ $0.done }) {
                let rss = Self.residentKiB(pid) ?? 0
                let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count ?? 0
                state.withLock { s in
                    var p = s.peaks[s.phase] ?? Peaks()
                    p.rss = max(p.rss, rss)
                    p.fds = max(p.fds, fds)
                    s.peaks[s.phase] = p
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
            finished.signal()
        }
        thread.start()
    }

    /// `VmRSS` of `pid` in KiB, from /proc.
    static func residentKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    func phase(_ name: String) { state.withLock { $0.phase = name } }
    func peaks(_ name: String) -> Peaks { state.withLock { $0.peaks[name] ?? Peaks() } }

    func stop() {
        state.withLock { $0.done = true }
        _ = finished.wait(timeout: .now() + 2)
    }
}

/// The system-wide `TcpExt` counter `name` from /proc/net/netstat (for
/// ListenOverflows: connections the kernel dropped because a listen queue
/// was full), or nil.
func tcpExtCounter(_ name: String) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/net/netstat", encoding: .utf8) else { return nil }
    let lines = text.split(separator: "\n").filter { $0.hasPrefix("TcpExt:") }
    guard lines.count >= 2 else { return nil }
    let names = lines[0].split(separator: " "), values = lines[1].split(separator: " ")
    guard let i = names.firstIndex(where: { $0 == name }), i < values.count else { return nil }
    return Int(values[i])
}

// MARK: The test

enum LoadTest {
    static func main(_ args: [String]) -> Int32 {
        let options: LoadTestOptions
        do { options = try LoadTestOptions(args) } catch {
            print("site-bench load: error: \(error)")
            return 2
        }
        guard sodium_init() >= 0 else { print("site-bench load: error: libsodium init failed"); return 1 }
        let cleanup = Cleanup()
        let signals = cleanup.onStopSignals(name: "site-bench load")
        defer { signals.forEach { $0.cancel() }; cleanup.run() }
        do {
            return try run(options, cleanup: cleanup) ? 0 : 1
        } catch {
            print("site-bench load: error: \(error)")
            return 1
        }
    }

    /// One user, one reusable ticket naming the server's user as the foil
    /// with a large limit (so its partners, the stocks, can pay it), the
    /// default handshake limits, and room for every attacker's connection.
    static func makeSite(at path: String, maxConnections: Int) throws -> (agent: AgentID, user: CUID, token: String) {
        let store = try SiteStore.create(at: path, address: try SiteAddress(host: "127.0.0.1", port: SiteAddress.defaultPort), passphrase: nil)
        let user = try CUID("bench")
        try store.addUser(cuid: user, name: "Bench Server", email: nil, sealingKey: nil)
        let expires = Int64(Date().timeIntervalSince1970 * 1000) + 86_400_000
        // 10^12 milliCHIPs: more than any run can pay at 1 milliCHIP a chit.
        let terms: JSONValue = ["side": "foil", "limit": .integer(1_000_000_000_000)]
        let ticket = try store.issueTicket(cuid: user, expiresAt: expires, reuse: true, bound: nil, terms: terms)
        try store.setConfigValue(.peerMaxConnections, String(maxConnections))
        return (try store.agent(), user, ticket.token)
    }

    /// The tally dialog for `me`, paced for the default token bucket of
    /// 127.0.0.1 (20/s, burst 5) and retried when a handshake is refused.
    /// Bounded: 3 tries of at most 3 socket timeouts each.
    static func open(_ me: ClientIdentity, site: ServerSite, timeout: Double) throws -> JSONValue {
        var errors: [String] = []
        for _ in 0..<3 {
            do { return try SiteBench.openTally(me, site: site, timeout: timeout) } catch { errors.append("\(error)") }
            Thread.sleep(forTimeInterval: 0.3)
        }
        throw BenchError("cannot open the tally of \(me.chad.cuid): \(errors.joined(separator: "; "))")
    }

    static func run(_ options: LoadTestOptions, cleanup: Cleanup) throws -> Bool {
        let fdLimit = PeerLimits.raiseDescriptorLimit()  // the serve child inherits it
        // Each attacker holds one socket here and one in serve at most.
        guard fdLimit > options.clients + 200 else {
            throw BenchError("the descriptor limit \(fdLimit) is too low for \(options.clients) clients")
        }
        let dir = try TempDir()
        cleanup.track(dir: dir.path)
        let db = dir.file("site.db")
        let maxConnections = options.clients + 256
        let made = try makeSite(at: db, maxConnections: maxConnections)
        let server = try ServeChild(binary: options.binary, db: db, logPath: dir.file("serve.log"), home: dir.path)
        cleanup.track(pid: server.pid)
        var stopped = false
        defer {
            if !stopped { server.stop() }
            cleanup.untrackPid()
        }
        guard server.agent == made.agent.description else { throw BenchError("serve reports agent \(server.agent), the file holds \(made.agent)") }
        let site = ServerSite(
            agent: made.agent, inviter: CHAD(cuid: made.user, agent: made.agent, address: try SiteAddress(host: "127.0.0.1", port: server.port)),
            token: made.token, port: server.port)
        let sampler = ServeSampler(pid: server.pid)
        defer { sampler.stop() }
        Thread.sleep(forTimeInterval: 0.5)
        let idleRSS = server.residentKiB() ?? 0

        // Identities: the healthy partner, attacker partners, strangers.
        let date = Timestamp.format(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000))
        let healthyIdentity = try ClientIdentity(index: 0, date: date)
        // Setup waits longer than the load: other work on the machine can
        // hold up the server's first commits.
        let setupTimeout = max(options.timeout, 20)
        let partner = try HealthyPartner(
            healthyIdentity, open: try open(healthyIdentity, site: site, timeout: setupTimeout),
            site: site, timeout: options.timeout)
        var partners: [ClientIdentity] = []
        for i in 1...options.partners {
            Thread.sleep(forTimeInterval: 0.06)
            let me = try ClientIdentity(index: i, date: date)
            _ = try open(me, site: site, timeout: setupTimeout)
            partners.append(me)
        }
        let strangers = try (0..<8).map { try ClientIdentity(index: 10_000 + $0, date: date) }
        let loadAverage =
            (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"

        print(
            "site-bench load: chipsite serve (pid \(server.pid)) on 127.0.0.1:\(server.port); load generator in this process;"
                + " \(ProcessInfo.processInfo.activeProcessorCount) CPUs shared by both; load average before: \(loadAverage)")
        print(
            "  serve limits: peer.handshake_rate 20/s and peer.handshake_burst 5 per source address (defaults),"
                + " peer.handshake_timeout 10 s, peer.max_connections \(maxConnections); descriptor limit \(fdLimit)")
        print(
            "  healthy partner: 127.0.0.1, stock of an open tally with the server's user (the foil); chit tran -> upd round trips,"
                + " one N+KK channel, reconnected every 2 s")
        print(
            "  attackers: \(options.clients) clients (one thread each) from 127.0.0.2-127.0.0.9; every 10th trickles,"
                + " the others pick a kind at random per connection; \(options.partners) of their identities are partners")
        print("")

        // Warm-up, then the baseline: the partner alone.
        sampler.phase("warm-up")
        _ = try partner.connect()
        for _ in 0..<100 { _ = try partner.pay() }
        partner.disconnect()
        Thread.sleep(forTimeInterval: 0.5)  // 127.0.0.1's bucket refills
        sampler.phase("baseline")
        let cpu0 = (server.cpuSeconds() ?? 0, ownCPUSeconds())
        let baseline = partner.run(seconds: options.baseline, reconnectEvery: 2)
        let cpu1 = (server.cpuSeconds() ?? 0, ownCPUSeconds())

        // The attack: start every client, let them ramp up, then measure.
        let counters = AttackCounters()
        let attack = Attack(
            site: site, partners: partners, partnerTickets: partners.map { $0.ticketMessage(token: site.token, inviter: site.inviter) },
            strangers: strangers, counters: counters, timeout: options.timeout,
            deadline: Date().addingTimeInterval(options.seconds + 60))
        sampler.phase("ramp-up")
        let group = DispatchGroup()
        for n in 0..<options.clients {
            group.enter()
            let thread = Thread {
                attack.client(n)
                group.leave()
            }
            thread.stackSize = 256 * 1024
            thread.start()
        }
        let rampEnd = Date().addingTimeInterval(20)
        while counters.started.load(ordering: .relaxed) < options.clients, Date() < rampEnd { Thread.sleep(forTimeInterval: 0.05) }
        let startedClients = counters.started.load(ordering: .relaxed)
        Thread.sleep(forTimeInterval: 1)
        sampler.phase("attack")
        let before = counters.snapshot()
        let overflows0 = tcpExtCounter("ListenOverflows")
        let cpu2 = (server.cpuSeconds() ?? 0, ownCPUSeconds())
        let underAttack = partner.run(seconds: options.seconds, reconnectEvery: 2)
        let cpu3 = (server.cpuSeconds() ?? 0, ownCPUSeconds())
        let after = counters.snapshot()
        let overflows1 = tcpExtCounter("ListenOverflows")
        counters.stop()
        sampler.phase("wind-down")
        let joined = group.wait(timeout: .now() + options.timeout + 15) == .success
        partner.disconnect()
        Thread.sleep(forTimeInterval: 1)
        let afterRSS = server.residentKiB() ?? 0
        let alive = server.isRunning

        // The server's own view of the tally, after a clean stop.
        let status = server.stop()
        stopped = true
        cleanup.untrackPid()
        var problems: [String] = []
        var serverLength: Int64 = -1
        do {
            let store = try SiteStore.open(at: db)
            problems = try store.verifyTally(partner.tally)
            serverLength = try store.chainHead(of: partner.tally).length
        } catch {
            problems.append("cannot read the site file: \(error)")
        }

        // MARK: Report
        print(
            pad("healthy partner", 26)
                + "seconds   payments      /s     p50 ms    p99 ms    max ms   handshakes  hs p50 ms  hs max ms   refused   broken")
        func partnerRow(_ name: String, _ r: PartnerResult) {
            print(
                pad("  \(name)", 26) + fmt(r.seconds, 7, decimals: 1) + fmt(Double(r.latencies.count), 11)
                    + fmt(Double(r.latencies.count) / max(r.seconds, 1e-9), 8)
                    + fmt(r.percentile(r.latencies, 0.5), 11, decimals: 2) + fmt(r.percentile(r.latencies, 0.99), 10, decimals: 2)
                    + fmt(r.latencies.max() ?? 0, 10, decimals: 2) + fmt(Double(r.handshakes.count), 13)
                    + fmt(r.percentile(r.handshakes, 0.5), 11, decimals: 2) + fmt(r.handshakes.max() ?? 0, 11, decimals: 2)
                    + fmt(Double(r.refused), 10) + fmt(Double(r.broken), 9))
            for e in r.errors { print("    failure: \(e)") }
        }
        partnerRow("baseline (no attack)", baseline)
        partnerRow("under attack", underAttack)
        print("")

        let window = underAttack.seconds
        print(
            pad("attack, \(fmt(window, 0, decimals: 1)) s window", 30) + "  attempts      /s   completed      /s   closed by serve      /s   errors")
        var totals = [0, 0, 0]
        for kind in AttackKind.allCases {
            let n = AttackOutcome.allCases.map { AttackCounters.value(after, kind, $0) - AttackCounters.value(before, kind, $0) }
            let attempts = n.reduce(0, +)
            for (i, v) in n.enumerated() { totals[i] += v }
            print(
                pad("  \(kind.name)", 30) + fmt(Double(attempts), 10) + fmt(Double(attempts) / window, 8)
                    + fmt(Double(n[0]), 12) + fmt(Double(n[0]) / window, 8) + fmt(Double(n[1]), 18) + fmt(Double(n[1]) / window, 8)
                    + fmt(Double(n[2]), 9))
            if n[2] > 0, let e = counters.firstError(kind) { print("    first error: \(e)") }
        }
        let attempts = totals.reduce(0, +)
        print(
            pad("  all", 30) + fmt(Double(attempts), 10) + fmt(Double(attempts) / window, 8)
                + fmt(Double(totals[0]), 12) + fmt(Double(totals[0]) / window, 8) + fmt(Double(totals[1]), 18) + fmt(Double(totals[1]) / window, 8)
                + fmt(Double(totals[2]), 9))
        print("  \(startedClients) of \(options.clients) clients running; all stopped in time: \(joined ? "yes" : "NO")")
        if let a = overflows0, let b = overflows1 {
            print(
                "  listen queue overflows (TcpExt ListenOverflows, whole machine) in the window: \(fmt(Double(b - a), 0))"
                    + "; healthy handshakes over 900 ms (a dropped SYN is sent again after 1 s): \(underAttack.handshakes.filter { $0 > 900 }.count)")
        }
        print("")

        func mib(_ kib: Int) -> String { fmt(Double(kib) / 1024, 7, decimals: 1) + " MiB" }
        print("serve")
        print(pad("  VmRSS idle, after start", 40) + mib(idleRSS))
        print(pad("  VmRSS peak, baseline", 40) + mib(sampler.peaks("baseline").rss) + "   descriptors peak \(sampler.peaks("baseline").fds)")
        print(pad("  VmRSS peak, under attack", 40) + mib(sampler.peaks("attack").rss) + "   descriptors peak \(sampler.peaks("attack").fds)")
        print(pad("  VmRSS 1 s after the attack", 40) + mib(afterRSS))
        func cores(_ a: (Double, Double), _ b: (Double, Double), _ s: Double) -> String {
            "serve \(fmt((b.0 - a.0) / max(s, 1e-9), 0, decimals: 2)) cores, load generator \(fmt((b.1 - a.1) / max(s, 1e-9), 0, decimals: 2)) cores"
        }
        print("  CPU, baseline: " + cores(cpu0, cpu1, baseline.seconds))
        print("  CPU, under attack: " + cores(cpu2, cpu3, underAttack.seconds))
        print("  running after the attack: \(alive ? "yes" : "NO"); exit status on SIGTERM: \(status)")
        print(
            "  the partner's tally on the server: chain of \(serverLength) (the partner paid \(partner.paid), holds \(partner.length));"
                + " tally verify: \(problems.isEmpty ? "clean" : problems.joined(separator: "; "))")
        let failures = baseline.failures + underAttack.failures
        print("")
        let refused = baseline.refused + underAttack.refused
        print(
            "healthy-peer failures: \(failures) (\(refused) refused connections or handshakes, \(failures - refused) payments failed"
                + " on an open channel)" + (failures == 0 ? "" : "; MUST be 0"))
        return failures == 0 && alive && problems.isEmpty && serverLength == partner.length && joined
    }
}
