import Foundation
import Testing
import TestSupport

/// A free TCP port (bound on all addresses, then released).
func adminFreePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    guard bound == 0 else { throw RunError("bind failed") }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A listening socket on 0.0.0.0:`port` held by the test (another program).
func adminHoldPort(_ port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(fd, 1) == 0 else { close(fd); throw RunError("cannot hold port \(port)") }
    return fd
}

@Suite struct AdminDoctorTests {
    func lines(_ r: Result) -> [Substring] { r.stdout.split(separator: "\n") }

    @Test func healthySitePassesEveryCheck() throws {
        let dir = try TempDir()
        let port = try adminFreePort()
        let db = dir.file("site.db")
        #expect(try chipsite(["init", "--db", db, "--host", "h.example", "--port", "\(port)"]).code == 0)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        let r = try chipsite(["doctor", "--db", db])
        #expect(r.code == 0, "\(r.stdout)\(r.stderr)")
        #expect(lines(r).count >= 7)
        #expect(lines(r).allSatisfy { $0.hasPrefix("OK  ") }, "\(r.stdout)")
        #expect(r.stdout.contains("integrity_check ok") && r.stdout.contains("schema current") && r.stdout.contains("port \(port) is free"))
        let j = try json(try chipsite(["doctor", "--db", db, "--json"]).stdout)
        #expect(j["ok"] as? Bool == true)
        let checks = try #require(j["checks"] as? [[String: Any]])
        #expect(Set(checks.compactMap { $0["check"] as? String }) == ["file", "integrity", "schema", "key", "config", "port", "clock", "lifts"])

        // serve holding the port is fine: it is ours (its poke socket answers).
        let serve = try AdminServe(db: db, listen: "0.0.0.0:\(port)")
        defer { serve.stop() }
        let busy = try chipsite(["doctor", "--db", db])
        #expect(busy.code == 0, "\(busy.stdout)")
        #expect(busy.stdout.contains("in use by this site"))
    }

    @Test func problemsAreFailLinesWithWhatToDo() throws {
        let dir = try TempDir()
        let port = try adminFreePort()
        let db = dir.file("site.db")
        #expect(try chipsite(["init", "--db", db, "--host", "h.example", "--port", "\(port)"]).code == 0)
        let fd = try adminHoldPort(port)
        defer { close(fd) }
        _ = try run(
            "/usr/bin/env",
            [
                "python3", "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"insert into config values('peer.max_frame','9')\"); c.commit()",
                db
            ])
        let r = try chipsite(["doctor", "--db", db])
        #expect(r.code == 1)
        #expect(r.stderr.isEmpty, "the FAIL lines say it all: \(r.stderr)")
        let fails = lines(r).filter { $0.hasPrefix("FAIL ") }
        #expect(fails.count == 2, "\(r.stdout)")
        #expect(fails.contains { $0.contains("port \(port) is in use by another program") && $0.contains("config set site.port") })
        #expect(fails.contains { $0.contains("peer.max_frame") && $0.contains("chipsite config set peer.max_frame 65536") })
        #expect(try json(try chipsite(["doctor", "--db", db, "--json"]).stdout)["ok"] as? Bool == false)
        // serve refuses the bad setting before it listens, in one line.
        expectOneLineError(
            try chipsite(["serve", "--db", db, "--listen", "127.0.0.1:0"], timeout: 20),
            containing: "config set peer.max_frame")

        let missing = try chipsite(["doctor", "--db", dir.file("none.db")])
        #expect(missing.code == 1)
        #expect(missing.stdout.contains("FAIL no site at") && missing.stdout.contains("chipsite init"))
    }

    /// A lift still waiting for its referee an hour past its deadline, and a
    /// referee caught signing both results, are reported with what they mean.
    @Test func liftsWaitingOnTheirRefereeAreReported() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        let referee = try json(try chipsite(["status", "--db", db, "--json"]).stdout)["agent"] as? String ?? ""
        let lift = String(repeating: "H", count: 43)
        _ = try run(
            "/usr/bin/python3",
            [
                "-c",
                """
                import sqlite3,sys
                c=sqlite3.connect(sys.argv[1])
                c.execute("insert into lift_headers values (?, '{}', 'circ', 1000, '2026-01-01T00:00:00.000Z', ?, 'now')", (sys.argv[2], sys.argv[3]))
                c.execute("insert into lifts (lift, role, state, hop, created, updated) values (?, 'relay', 'part', 0, 'now', 'now')", (sys.argv[2],))
                c.execute("insert into referees_dropped values (?, ?, 'now')", (sys.argv[3], sys.argv[2]))
                c.commit()
                """,
                db, lift, referee
            ])
        let r = try chipsite(["doctor", "--db", db])
        #expect(r.code == 1)
        #expect(r.stdout.contains("FAIL 1 lift(s) wait for referee \(referee) since 2026-01-01T00:00:00.000Z"), "\(r.stdout)")
        #expect(r.stdout.contains("FAIL referee \(referee) signed both good and void for lift HHHHHHHH"))
    }

    @Test func anOlderFileIsCheckedThenMigrated() throws {
        let dir = try TempDir()
        let db = dir.file("site.db")
        #expect(try chipsite(["init", "--db", db, "--host", "h.example", "--port", "\(try adminFreePort())"]).code == 0)
        let current = try #require(try json(try chipsite(["status", "--db", db, "--json"]).stdout)["schema_version"] as? Int)
        // Make it a file from before the last migration (invoices).
        _ = try run(
            "/usr/bin/env",
            [
                "python3", "-c",
                """
                import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("drop table invoices")
                c.execute("delete from grdb_migrations where identifier='2026-11-25 invoices'"); c.commit()
                """, db
            ])
        let r = try chipsite(["doctor", "--db", db])
        #expect(r.code == 0, "\(r.stdout)")
        #expect(r.stdout.contains("schema migrated from version \(current - 1) to \(current)"), "\(r.stdout)")
        #expect(try chipsite(["doctor", "--db", db]).stdout.contains("schema current (version \(current))"))
    }

    @Test func sealedSiteKeyIsCheckedOnlyWithAPassphrase() throws {
        let dir = try TempDir()
        let db = dir.file("site.db")
        let pass = dir.file("pass"), wrong = dir.file("wrong")
        try Data("doctor passphrase\n".utf8).write(to: URL(fileURLWithPath: pass))
        try Data("nope\n".utf8).write(to: URL(fileURLWithPath: wrong))
        #expect(try chipsite(["init", "--db", db, "--host", "h.example", "--port", "\(try adminFreePort())", "--passphrase-file", pass]).code == 0)
        let unchecked = try chipsite(["doctor", "--db", db])
        #expect(unchecked.code == 0, "\(unchecked.stdout)")
        #expect(unchecked.stdout.contains("sealed: not checked"))
        let checked = try chipsite(["doctor", "--db", db, "--passphrase-file", pass])
        #expect(checked.code == 0 && checked.stdout.contains("opens with the passphrase"), "\(checked.stdout)")
        let bad = try chipsite(["doctor", "--db", db, "--passphrase-file", wrong])
        #expect(bad.code == 1 && bad.stdout.contains("FAIL the passphrase does not open the site key"), "\(bad.stdout)")
    }
}
