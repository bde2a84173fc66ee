import ArgumentParser
import ChipModel
import ChipDaemon
import ChipProtocol
import ChipStore

#if canImport(Glibc)
    import Glibc
#endif

/// `chipsite doctor`: checks what a site needs to run and says what to do
/// about each problem. Exit 1 when any check fails.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check the site: file integrity, keys, schema, clock, listen port, settings.",
        discussion: """
            Prints one line per check, `OK  …` or `FAIL …: what to do`, and exits 1 when \
            any check fails. A sealed site's keys are only checked when a passphrase is \
            given with --passphrase-file or $CHIPSITE_PASSPHRASE_FILE (doctor never prompts).
            """)

    /// The clock is sane from this year on...
    static let earliestYear = 2024
    /// ...and before this one.
    static let latestYear = 2100
    static let secondsPerYear = 31_556_952.0

    @OptionGroup var site: SiteOptions
    @OptionGroup var passphrase: PassphraseOptions
    @OptionGroup var output: OutputOptions

    struct Check {
        var name: String
        var ok: Bool
        var detail: String
    }

    func run() throws {
        var checks = [Check]()
        func ok(_ name: String, _ detail: String) { checks.append(Check(name: name, ok: true, detail: detail)) }
        func fail(_ name: String, _ detail: String) { checks.append(Check(name: name, ok: false, detail: detail)) }

        let path = site.location().path
        var store: SiteStore?
        do {
            // Not migrated yet: an older file is checked for integrity first.
            store = try SiteStore.open(at: path, migrate: false)
            ok("file", "\(path) is a chipsite site")
        } catch {
            fail("file", "\(error)")
        }
        if let store {
            do {
                if let problem = try SiteBackup.integrityProblem(path) {
                    fail("integrity", "PRAGMA integrity_check says \(Printable.quote(problem)): restore the last good backup (`chipsite restore`)")
                } else {
                    ok("integrity", "PRAGMA integrity_check ok")
                }
            } catch { fail("integrity", "\(error)") }

            do {
                guard checks.allSatisfy(\.ok) else { throw CLIError("not migrated: the file fails its integrity check") }
                let (from, to) = try store.migrate()
                if to != SiteStore.currentSchemaVersion {
                    fail("schema", "schema version \(to), this chipsite writes \(SiteStore.currentSchemaVersion): run a current chipsite")
                } else if from != to {
                    ok("schema", "schema migrated from version \(from) to \(to) (current)")
                } else {
                    ok("schema", "schema current (version \(to))")
                }
            } catch { fail("schema", "\(error)") }

            checkKeys(store, ok: ok, fail: fail)
            checkConfig(store, ok: ok, fail: fail)
            checkPort(store, path: path, ok: ok, fail: fail)
            checkLifts(store, ok: ok, fail: fail)
        }
        checkClock(ok: ok, fail: fail)

        if output.json {
            let items = checks.map { c -> JSONValue in ["check": .string(c.name), "ok": .bool(c.ok), "detail": .string(c.detail)] }
            print(JSONValue.object(["ok": .bool(checks.allSatisfy(\.ok)), "checks": .array(items)]).prettyString)
        } else {
            for c in checks { print((c.ok ? "OK  " : "FAIL ") + c.detail) }
        }
        if !checks.allSatisfy(\.ok) { throw ExitCode(1) }
    }

    func checkKeys(_ store: SiteStore, ok: (String, String) -> Void, fail: (String, String) -> Void) {
        do {
            let info = try store.siteKeyInfo()
            var kek: SealingKey?
            if info.sealed {
                guard var secret = try passphrase.fromFile() else {
                    ok("key", "site key \(info.fingerprint) present; sealed: not checked (give --passphrase-file to check it)")
                    return
                }
                defer { Crypto.wipe(&secret) }
                do { kek = try store.sealingKey(passphrase: secret) } catch StoreError.wrongPassphrase {
                    fail("key", "the passphrase does not open the site key: give the right --passphrase-file")
                    return
                }
            }
            let key = try store.siteKey(sealingKey: kek)
            guard key.publicKey == info.agent.publicKey else {
                fail("key", "the site key does not match the agent id: restore the last good backup")
                return
            }
            let bad = try store.unopenableUserKeys(sealingKey: kek)
            if bad.isEmpty {
                ok("key", "site key \(info.fingerprint) opens\(info.sealed ? " with the passphrase" : ""); every user key opens")
            } else {
                fail(
                    "key",
                    "user keys that do not open: \(bad.prefix(5).joined(separator: ", ")): restore them from a backup or `chipsite user import`")
            }
        } catch {
            fail("key", "\(error)")
        }
    }

    func checkConfig(_ store: SiteStore, ok: (String, String) -> Void, fail: (String, String) -> Void) {
        do {
            let entries = try store.configEntries()
            let bad = entries.filter { !$0.isValid || $0.effective == nil }
            for e in bad {
                let fix = e.key.defaultValue.map { "chipsite config set \(e.key.name) \($0)" } ?? "chipsite config set \(e.key.name) VALUE"
                let value = e.stored.map(Printable.quote) ?? "missing"
                fail("config", "\(e.key.name) is \(value), not \(e.key.range): \(fix)")
            }
            if bad.isEmpty { ok("config", "\(entries.count) settings in range") }
        } catch {
            fail("config", "\(error)")
        }
    }

    func checkPort(_ store: SiteStore, path: String, ok: (String, String) -> Void, fail: (String, String) -> Void) {
        guard let portText = try? store.configValue(.sitePort), let port = Int(portText), SiteAddress.portRange.contains(port) else {
            fail("port", "site.port is not set: chipsite config set site.port \(SiteAddress.defaultPort)")
            return
        }
        switch Self.bindProbe(port: port) {
        case 0:
            ok("port", "port \(port) is free for `chipsite serve`")
        case EADDRINUSE:
            if Self.serveAnswers(siteFile: path) {
                ok("port", "port \(port) is in use by this site's `chipsite serve`")
            } else {
                fail("port", "port \(port) is in use by another program: stop it, or `chipsite config set site.port PORT`")
            }
        case EACCES:
            fail("port", "port \(port) needs privileges to bind: run serve as root or with CAP_NET_BIND_SERVICE, or pick a port above 1023")
        case let code:
            fail("port", "cannot bind port \(port): \(String(cString: strerror(code)))")
        }
    }

    /// Lifts waiting on their referee for over an hour past the deadline
    /// (their credit stays reserved; 9.7), and referees that equivocated.
    func checkLifts(_ store: SiteStore, ok: (String, String) -> Void, fail: (String, String) -> Void) {
        do {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let stalled = try store.stalledLifts(now: Int64(ts.tv_sec) * 1000 + (TestHooks.clockOffsetMs ?? 0))
            let dropped = try store.droppedReferees()
            for (referee, lifts) in Dictionary(grouping: stalled, by: \.referee).sorted(by: { $0.key.description < $1.key.description }) {
                fail(
                    "lifts",
                    "\(lifts.count) lift(s) wait for referee \(referee) since \(lifts[0].deadline), over an hour past the deadline: is it reachable? (their credit stays reserved; `chipsite lift show -- \(lifts[0].lift.prefix(8))`)"
                )
            }
            for d in dropped {
                fail(
                    "lifts", "referee \(d.agent) signed both good and void for lift \(d.lift.prefix(8)): it is off the accept list; good was applied")
            }
            if stalled.isEmpty, dropped.isEmpty { ok("lifts", "no lift waits on its referee") }
        } catch {
            fail("lifts", "\(error)")
        }
    }

    func checkClock(ok: (String, String) -> Void, fail: (String, String) -> Void) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let now = Timestamp.format(millisecondsSince1970: Int64(ts.tv_sec) * 1000)
        let year = 1970 + Int(Double(ts.tv_sec) / Self.secondsPerYear)
        if year >= Self.earliestYear, year < Self.latestYear {
            ok("clock", "clock reads \(now)")
        } else {
            fail("clock", "clock reads \(now): set the system time (timestamps in tallies and chits depend on it)")
        }
    }

    /// Tries to bind 0.0.0.0:`port` (as serve does by default): 0 when it
    /// could, else errno.
    static func bindProbe(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = INADDR_ANY
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return rc == 0 ? 0 : errno
    }

    /// Whether a `chipsite serve` for this file accepts on its poke socket.
    static func serveAnswers(siteFile: String) -> Bool {
        guard let socketPath = SiteDaemon.pokeSocketPath(forSiteFile: siteFile) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in socketPath.utf8.enumerated() where i < raw.count - 1 { raw[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0
    }
}
