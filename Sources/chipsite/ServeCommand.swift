import ArgumentParser
import CMalloc
import ChipModel
import ChipPeer
import ChipDaemon
import ChipProtocol
import ChipStore
import Dispatch
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the site: accept other sites, deliver queued messages.",
        discussion: """
            Runs in the foreground and logs to stderr. Prints one line on stdout once \
            listening. SIGINT or SIGTERM stops it gracefully (exit 0). Settings are read \
            at start: restart after `chipsite config set`. This is the only chipsite \
            process that talks to other sites; other commands write to the site file and \
            wake it through the socket <site file>.sock.
            """)

    @OptionGroup var site: SiteOptions

    @Option(
        help: ArgumentHelp(
            "Address and port to listen on (default: all IPv4 addresses and the configured site.port; port 0 picks one).",
            valueName: "host:port"))
    var listen: String?

    @Option(
        help: ArgumentHelp(
            "Address and port of the user port, where users' devices connect (default: the --listen host and the configured user.port, else the peer port + 1; port 0 picks one).",
            valueName: "host:port"))
    var userListen: String?

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel: Logger.Level = .info

    @Option(help: ArgumentHelp("text or json.", valueName: "format"))
    var logFormat: StderrLogHandler.Format = .text

    @OptionGroup var passphrase: PassphraseOptions

    func validate() throws {
        _ = try Self.parseListen(listen, defaultPort: SiteAddress.defaultPort)
        if let userListen { _ = try Self.parseListen(userListen, defaultPort: UserPortDefaults.defaultPort, option: "--user-listen") }
    }

    func run() async throws {
        let store = try site.open(concurrentReads: true)
        let status = try store.status()
        let (host, port) = try Self.parseListen(listen, defaultPort: status.address.port)
        let sealingKey = try passphrase.sealingKey(for: store)
        let key = try store.siteKey(sealingKey: sealingKey)
        let level = logLevel, format = logFormat
        var logger = Logger(label: "chipsite") { _ in StderrLogHandler(logLevel: level, format: format) }
        logger.logLevel = level

        let limits = try SiteDaemon.limits(from: store)
        let descriptors = PeerLimits.raiseDescriptorLimit()
        if descriptors < limits.maxConnections + Self.spareDescriptors {
            logger.warning(
                "the descriptor limit is below peer.max_connections; raise it (LimitNOFILE=) or lower the setting",
                metadata: ["limit": "\(descriptors)", "peer.max_connections": "\(limits.maxConnections)"])
        }
        var clock: any SiteClock = SystemClock()
        if let offset = TestHooks.clockOffsetMs {
            logger.warning("test only: the clock runs \(offset) ms off (CHIPSITE_TEST_CLOCK_OFFSET_MS)")
            clock = OffsetClock(offset: Double(offset) / 1000)
        }
        let daemon = try SiteDaemon(store: store, siteKey: key, sealingKey: sealingKey, limits: limits, logger: logger, clock: clock)
        // After many channels closed, the allocator's free memory goes back
        // to the system (glibc keeps it otherwise; the engine decides when).
        await daemon.engine.setMemoryRelease { _ = chipsite_release_free_memory() }
        if let kill = TestHooks.killAt {
            logger.warning("test only: serve kills itself at \(kill.rawValue) (CHIPSITE_TEST_KILL_AT)")
            await daemon.engine.setTestKill(kill)
            await daemon.users.setTestKill(kill)
        }
        let bound: String
        do {
            let address = try await daemon.start(host: host, port: port)
            bound = "\(address.ipAddress ?? host):\(address.port ?? port)"
        } catch {
            await daemon.stop()
            throw CLIError("cannot listen on \(host):\(port): \(error)")
        }
        var userBound = "none"
        let (userHost, userPort) = try Self.userListen(userListen, peerHost: host, peerPort: port, store: store)
        do {
            userBound = "\(userHost):\(try await daemon.startUserPort(host: userHost, port: userPort))"
        } catch {
            // Asked for (--user-listen, user.port): an error. The default (the
            // peer port + 1) may be taken: the site still serves its peers.
            if userListen != nil || (try? store.configValue(.userPort)) ?? nil != nil {
                await daemon.stop()
                throw CLIError("cannot listen on the user port \(userHost):\(userPort): \(error)")
            }
            logger.warning(
                "the user port could not listen: devices cannot connect (set user.port or --user-listen)",
                metadata: ["listen": "\(userHost):\(userPort)", "error": "\(error)"])
        }
        do { try await daemon.listenForPokes(siteFile: store.path) } catch {
            logger.warning("no poke socket; CLI commits are found by the site file watch", metadata: ["error": "\(error)"])
        }
        // Commits by other processes that did not poke (doc/architecture.md).
        daemon.watchSiteFile(store.path)

        let (stop, signalSources) = Self.stopSignals()
        defer { signalSources.forEach { $0.cancel() } }
        let runner = Task { await daemon.run() }
        writeStdout("chipsite: user port on \(userBound)\n")
        writeStdout("chipsite: serving \(status.agent) on \(bound)\n")
        logger.info("serving", metadata: ["agent": "\(status.agent)", "listen": "\(bound)", "user-listen": "\(userBound)", "db": "\(store.path)"])
        let signal = await stop.wait()
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        runner.cancel()
        await runner.value
        await daemon.stop()
        // A stopped site is one file: nothing may stay in site.db-wal.
        do { try store.checkpointAndClose() } catch {
            logger.warning(
                "the site file was not checkpointed; copy site.db-wal with it or use `chipsite backup`",
                metadata: ["error": "\(error)"])
        }
        logger.info("stopped")
    }

    /// Descriptors serve needs besides its peer connections (the site file,
    /// its WAL, the listener, the poke socket, the event loop, the file watch).
    static let spareDescriptors = 32

    /// Where the user port listens: `--user-listen`, else the peer host on
    /// `user.port`, else on the peer port + 1 (0 when the peer port is 0).
    static func userListen(_ text: String?, peerHost: String, peerPort: Int, store: SiteStore) throws -> (String, Int) {
        if let text { return try parseListen(text, defaultPort: UserPortDefaults.defaultPort, option: "--user-listen") }
        if let configured = try store.configValue(.userPort), let port = Int(configured) { return (peerHost, port) }
        return (peerHost, peerPort == 0 ? 0 : peerPort + UserPortDefaults.portOffset)
    }

    /// `host:port`, `[v6]:port` or `:port`; nil means all addresses on the configured port.
    static func parseListen(_ text: String?, defaultPort: Int, option: String = "--listen") throws -> (String, Int) {
        guard let text else { return ("0.0.0.0", defaultPort) }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...SiteAddress.portRange.upperBound).contains(port)
        else {
            throw ValidationError("\(option) must be HOST:PORT, not \(Printable.quote(text))")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = "0.0.0.0" }
        try SiteAddress.validate(host: host)
        return (host, port)
    }

    /// SIGINT and SIGTERM end the wait; SIGHUP is logged (settings apply on
    /// restart). The sources must be kept alive as long as the wait.
    static func stopSignals() -> (SignalWaiter, [any DispatchSourceSignal]) {
        let waiter = SignalWaiter()
        let sources = [SIGINT, SIGTERM, SIGHUP].map { sig -> any DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { waiter.fire(sig) }
            source.resume()
            return source
        }
        return (waiter, sources)
    }
}

/// Waits for the first stop signal.
final class SignalWaiter: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Int32, Never>?
        var fired: Int32?
    }
    private let state = Mutex(State())

    func fire(_ sig: Int32) {
        if sig == SIGHUP {
            writeStderr("chipsite: SIGHUP: settings are read at start; restart serve to apply changes\n")
            return
        }
        let waiting = state.withLock { s -> CheckedContinuation<Int32, Never>? in
            guard s.fired == nil else { return nil }
            s.fired = sig
            defer { s.continuation = nil }
            return s.continuation
        }
        waiting?.resume(returning: sig)
    }

    func wait() async -> Int32 {
        await withCheckedContinuation { c in
            let already = state.withLock { s -> Int32? in
                if let fired = s.fired { return fired }
                s.continuation = c
                return nil
            }
            if let already { c.resume(returning: already) }
        }
    }
}

/// Writes to stdout unbuffered, so a ready line reaches a pipe at once.
func writeStdout(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        if n <= 0 { return }
        bytes = bytes.dropFirst(n)
    }
}
