import Foundation
import Synchronization
import TestSupport

/// What a `FaultProxy` does to the connections it carries, and how often.
/// Every decision comes from one seeded generator: connection number `n` of
/// a proxy started with seed `s` always gets the same plan (where it is cut,
/// stalled, whether its first flight is replayed), so a failure can be
/// replayed with the seed the proxy prints. Timing still varies from run to run.
struct FaultSettings: Sendable {
    /// Chance that a connection is cut (both ways) once a number of bytes,
    /// counted in both directions, went through: anywhere from the first
    /// handshake byte to deep into the stream (log-uniform up to `dropBytesMax`).
    var dropChance = 0.3
    var dropBytesMax = 1 << 20
    /// Every faulty connection is also cut after a random number of seconds.
    var lifetime: ClosedRange<Double> = 2...20
    /// Chance that a write is cut in two: part, a pause, the rest.
    var splitChance = 0.3
    var splitPause: ClosedRange<Double> = 0.001...0.03
    /// Chance that a write waits a little first.
    var delayChance = 0.1
    var delay: ClosedRange<Double> = 0.002...0.05
    /// Chance that a connection stalls once (both ways), at a random byte count.
    var stallChance = 0.15
    var stall: ClosedRange<Double> = 0.2...2.0
    /// Chance that the first bytes the client sent (before the target answered)
    /// are replayed to the target on a second connection of the proxy's own,
    /// whose answers are read and thrown away for up to `replayLinger` seconds.
    var duplicateChance = 0.2
    var replayLinger: ClosedRange<Double> = 0.1...1.5

    // Bounds: nothing grows or waits without limit.
    /// Connections carried at once; more are closed at once (a refusal).
    var maxConcurrent = 64
    /// Connections over the proxy's life; later ones are closed at once.
    var maxConnections = 5_000
    /// Seconds one connection may live; then it is cut.
    var maxLifetime: Double = 60
    /// Bytes one connection may carry (both directions); then it is cut.
    var maxBytes = 64 << 20
    /// Seconds a blocked write may take before the connection is cut.
    var writeTimeout: Double = 5

    /// A proxy that only forwards.
    static let none = FaultSettings(dropChance: 0, splitChance: 0, delayChance: 0, stallChance: 0, duplicateChance: 0)
}

/// What a proxy did, for the test to show that faults really happened.
struct FaultStats: Sendable, CustomStringConvertible {
    var accepted = 0
    var refused = 0
    var dropped = 0
    var splits = 0
    var delays = 0
    var stalls = 0
    var duplicates = 0
    var bytes = 0

    var description: String {
        "\(accepted) connections (\(refused) refused), \(dropped) cut, \(splits) writes split, \(delays) delayed, "
            + "\(stalls) stalls, \(duplicates) first flights replayed, \(bytes) bytes"
    }
}

typealias FaultRNG = SplitMix64

extension SplitMix64 {
    mutating func chance(_ p: Double) -> Bool { p > 0 && Double.random(in: 0..<1, using: &self) < p }
    mutating func seconds(_ r: ClosedRange<Double>) -> Double { Double.random(in: r, using: &self) }
}

/// A fault-injecting TCP proxy for tests: listens on 127.0.0.1 (a free port),
/// forwards each connection to `127.0.0.1:target`, and on the way cuts
/// connections at random points, splits writes, delays, stalls, and replays
/// clients' first flights on connections of its own (see `FaultSettings`).
/// Plain threads and POSIX sockets: one accept thread, one thread per
/// connection (`poll` on both sockets), one per replay. `stop()` ends them
/// all within about a second; `faulty = false` turns the faults off.
final class FaultProxy: Sendable {
    let name: String
    let seed: UInt64
    let port: Int
    let target: Int
    let settings: FaultSettings

    private struct State {
        var rng: FaultRNG
        var stats = FaultStats()
        var active = 0
        var threads = 0
        var stopping = false
        var faulty = true
        var log: [String] = []
    }
    private let state: Mutex<State>
    private let listener: Int32

    /// Binds 127.0.0.1 (`port` 0: a free one) and starts accepting.
    init(name: String, target: Int, seed: UInt64, port wanted: Int = 0, settings: FaultSettings = FaultSettings()) throws {
        self.name = name
        self.seed = seed
        self.target = target
        self.settings = settings
        state = Mutex(State(rng: FaultRNG(seed: seed)))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RunError("proxy \(name): socket: \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port: wanted)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw RunError("proxy \(name): cannot listen on 127.0.0.1:\(wanted): errno \(errno)")
        }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        print("FaultProxy \(name): 127.0.0.1:\(port) → 127.0.0.1:\(target), seed \(seed)")
        spawn { self.acceptLoop() }
    }

    /// Faults on (the default) or off (plain forwarding from now on).
    var faulty: Bool {
        get { state.withLock { $0.faulty } }
        set { state.withLock { $0.faulty = newValue } }
    }

    var stats: FaultStats { state.withLock { $0.stats } }

    /// The last events (connections, cuts, stalls, replays), for a failure message.
    var recent: [String] { state.withLock { $0.log } }

    /// Stops accepting, cuts every connection, and waits (at most `timeout`
    /// seconds) for the threads to end. Safe to call more than once.
    func stop(timeout: Double = 5) {
        let first = state.withLock { s -> Bool in
            defer { s.stopping = true }
            return !s.stopping
        }
        if first { shutdown(listener, Int32(SHUT_RDWR)) }
        let deadline = Date().addingTimeInterval(timeout)
        while state.withLock({ $0.threads }) > 0, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if first { close(listener) }
    }

    deinit { stop() }

    // MARK: Threads

    private var stopping: Bool { state.withLock { $0.stopping } }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        state.withLock { $0.threads += 1 }
        let thread = Thread { [self] in
            body()
            state.withLock { $0.threads -= 1 }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func note(_ s: inout State, _ event: String) {
        s.log.append(event)
        if s.log.count > 200 { s.log.removeFirst(s.log.count - 200) }
    }

    private func acceptLoop() {
        var n = 0
        while !stopping {
            guard Self.waitReadable(listener, timeout: 0.1) else { continue }
            let client = accept(listener, nil, nil)
            if client < 0 { continue }
            n += 1
            // Every connection's plan comes from the proxy's generator, in accept order.
            let (admitted, plan) = state.withLock { s -> (Bool, ConnectionPlan?) in
                let plan = ConnectionPlan(number: n, seed: s.rng.next(), settings: settings, faulty: s.faulty)
                guard !s.stopping, s.active < settings.maxConcurrent, s.stats.accepted < settings.maxConnections else {
                    s.stats.refused += 1
                    note(&s, "#\(n) refused (bounds)")
                    return (false, nil)
                }
                s.active += 1
                s.stats.accepted += 1
                note(&s, "#\(n) \(plan)")
                return (true, plan)
            }
            guard admitted, let plan else { close(client); continue }
            spawn { [self] in
                carry(client, plan: plan)
                state.withLock { $0.active -= 1 }
            }
        }
    }

    /// What happens to one connection, drawn when it is accepted.
    struct ConnectionPlan: CustomStringConvertible {
        let number: Int
        var rng: FaultRNG
        let faulty: Bool
        /// Cut after this many bytes (both directions), if at all.
        let dropAt: Int?
        /// Stall once after this many bytes, for this long.
        let stallAt: Int?
        let stallFor: Double
        /// Replay the client's first flight on a second connection.
        let duplicate: Bool
        /// Cut after this many seconds.
        let lifetime: Double

        init(number: Int, seed: UInt64, settings: FaultSettings, faulty: Bool) {
            self.number = number
            self.faulty = faulty
            var rng = FaultRNG(seed: seed)
            // Log-uniform: a cut in the handshake is as likely as one deep in the stream.
            let logMax = log2(Double(max(2, settings.dropBytesMax)))
            dropAt = faulty && rng.chance(settings.dropChance) ? Int(pow(2, rng.seconds(0...logMax))) : nil
            stallAt = faulty && rng.chance(settings.stallChance) ? Int(pow(2, rng.seconds(0...logMax))) : nil
            stallFor = rng.seconds(settings.stall)
            // The first two faulty connections always replay (when replays are on),
            // so every run has some however few connections the sites need.
            duplicate = faulty && (rng.chance(settings.duplicateChance) || (number <= 2 && settings.duplicateChance > 0))
            lifetime = faulty ? min(settings.maxLifetime, rng.seconds(settings.lifetime)) : settings.maxLifetime
            self.rng = rng
        }

        var description: String {
            var parts = ["#\(number)"]
            if let dropAt { parts.append("cut at \(dropAt) B") }
            if let stallAt { parts.append("stall \(String(format: "%.1f", stallFor)) s at \(stallAt) B") }
            if duplicate { parts.append("replay first flight") }
            parts.append("lives \(String(format: "%.1f", lifetime)) s")
            if !faulty { parts.append("no faults") }
            return parts.joined(separator: ", ")
        }
    }

    /// Carries one connection until either side closes, the plan cuts it,
    /// or a bound is reached; then closes both sockets.
    private func carry(_ client: Int32, plan: ConnectionPlan) {
        var plan = plan
        defer { close(client) }
        let server = Self.connectLoopback(port: target)
        guard server >= 0 else { return }
        defer { close(server) }
        for fd in [client, server] { Self.configure(fd, writeTimeout: settings.writeTimeout) }
        let deadline = Date().addingTimeInterval(plan.lifetime)
        var total = 0
        var stalled = false
        // The client's first flight: what it sent before the target said anything.
        var firstFlight = [UInt8]()
        var serverSpoke = false
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)

        func cut(_ why: String) {
            state.withLock { s in
                s.stats.dropped += 1
                note(&s, "#\(plan.number) cut: \(why)")
            }
        }

        while !stopping {
            guard Date() < deadline else { cut("lifetime"); return }
            var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: server, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, 100)
            if ready < 0 { if errno == EINTR { continue } else { return } }
            if ready == 0 { continue }
            for (i, pfd) in fds.enumerated() where pfd.revents != 0 {
                let (from, to) = i == 0 ? (client, server) : (server, client)
                // Read a random amount so that chunk boundaries vary too.
                let want = plan.faulty ? Int.random(in: 1...buffer.count, using: &plan.rng) : buffer.count
                let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, want) }
                if n <= 0 { return }  // closed (or failed): close both
                var chunk = Array(buffer[0..<n])
                if i == 0, !serverSpoke, firstFlight.count < 64 * 1024 { firstFlight += chunk }
                if i == 1, !serverSpoke {
                    serverSpoke = true
                    if plan.duplicate, !firstFlight.isEmpty { replay(firstFlight, plan: &plan) }
                }
                var cutNow = false
                if let dropAt = plan.dropAt, total + chunk.count >= dropAt {
                    chunk = Array(chunk.prefix(max(0, dropAt - total)))
                    cutNow = true
                }
                guard forward(chunk, to: to, plan: &plan) else { cut("write failed"); return }
                total += chunk.count
                state.withLock { $0.stats.bytes += chunk.count }
                if cutNow { cut("at \(total) B"); return }
                if total > settings.maxBytes { cut("byte bound"); return }
                if let stallAt = plan.stallAt, !stalled, total >= stallAt {
                    stalled = true
                    state.withLock { s in
                        s.stats.stalls += 1
                        note(&s, "#\(plan.number) stalls \(String(format: "%.1f", plan.stallFor)) s at \(total) B")
                    }
                    sleepUnlessStopping(plan.stallFor)
                }
            }
        }
    }

    /// Writes `bytes`, maybe after a delay, maybe in two parts with a pause between.
    private func forward(_ bytes: [UInt8], to fd: Int32, plan: inout ConnectionPlan) -> Bool {
        guard !bytes.isEmpty else { return true }
        if plan.faulty, plan.rng.chance(settings.delayChance) {
            state.withLock { $0.stats.delays += 1 }
            Thread.sleep(forTimeInterval: plan.rng.seconds(settings.delay))
        }
        if plan.faulty, bytes.count > 1, plan.rng.chance(settings.splitChance) {
            let cut = Int.random(in: 1..<bytes.count, using: &plan.rng)
            state.withLock { $0.stats.splits += 1 }
            guard Self.writeAll(fd, bytes[0..<cut]) else { return false }
            Thread.sleep(forTimeInterval: plan.rng.seconds(settings.splitPause))
            return Self.writeAll(fd, bytes[cut...])
        }
        return Self.writeAll(fd, bytes[...])
    }

    /// Replays the first `n` bytes of `flight` (n drawn from the plan) to the
    /// target on a connection of our own, reads and discards the answers for
    /// a while, and closes it.
    private func replay(_ flight: [UInt8], plan: inout ConnectionPlan) {
        let bytes = Array(flight.prefix(Int.random(in: 1...flight.count, using: &plan.rng)))
        let linger = plan.rng.seconds(settings.replayLinger)
        let number = plan.number, target = self.target, timeout = settings.writeTimeout
        state.withLock { s in
            s.stats.duplicates += 1
            note(&s, "#\(number) first flight replayed (\(bytes.count) of \(flight.count) B)")
        }
        spawn { [self] in
            let fd = Self.connectLoopback(port: target)
            guard fd >= 0 else { return }
            defer { close(fd) }
            Self.configure(fd, writeTimeout: timeout)
            guard Self.writeAll(fd, bytes[...]) else { return }
            let end = Date().addingTimeInterval(linger)
            var sink = [UInt8](repeating: 0, count: 4096)
            while Date() < end, !stopping {
                guard Self.waitReadable(fd, timeout: 0.05) else { continue }
                if sink.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) <= 0 { return }
            }
        }
    }

    private func sleepUnlessStopping(_ seconds: Double) {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end, !stopping { Thread.sleep(forTimeInterval: min(0.05, max(0, end.timeIntervalSinceNow))) }
    }

    // MARK: Sockets

    private static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return addr
    }

    /// A connected socket to 127.0.0.1:`port`, or -1.
    private static func connectLoopback(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var addr = loopback(port: port)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if ok != 0 { close(fd); return -1 }
        return fd
    }

    /// No Nagle delay (so a split really goes out as two segments) and a
    /// bounded blocking write.
    private static func configure(_ fd: Int32, writeTimeout: Double) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval()
        tv.tv_sec = .init(writeTimeout)
        tv.tv_usec = .init((writeTimeout - floor(writeTimeout)) * 1e6)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        #if os(macOS)
            setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
    }

    /// Writes everything (a closed peer is an error, never SIGPIPE).
    private static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        #if os(Linux)
            let flags = Int32(MSG_NOSIGNAL)
        #else
            let flags: Int32 = 0
        #endif
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, flags) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    private static func waitReadable(_ fd: Int32, timeout: Double) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, Int32(timeout * 1000)) > 0
    }
}
