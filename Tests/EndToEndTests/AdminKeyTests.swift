import Foundation
import Testing
import TestSupport

@Suite struct AdminKeyTests {
    @Test func showSealPassphraseUnsealCycle() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        let agent = try json(try chipsite(["status", "--db", db, "--json"]).stdout)["agent"] as? String
        let show = try json(try chipsite(["key", "show", "--db", db, "--json"]).stdout)
        #expect(Set(show.keys) == ["agent", "fingerprint", "sealed", "created"])
        #expect(show["agent"] as? String == agent && show["sealed"] as? Bool == false)
        let fp = try #require(show["fingerprint"] as? String)
        #expect(fp.range(of: "^[0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4}$", options: .regularExpression) != nil)
        #expect(try chipsite(["key", "show", "--db", db]).stdout.contains(fp))

        let p1 = dir.file("p1"), p2 = dir.file("p2")
        try Data("first passphrase\n".utf8).write(to: URL(fileURLWithPath: p1))
        try Data("second passphrase\n".utf8).write(to: URL(fileURLWithPath: p2))
        let sealed = try chipsite(["key", "seal", "--new-passphrase-file", p1, "--db", db])
        #expect(sealed.code == 0, "\(sealed.stderr)")
        #expect(try json(try chipsite(["user", "show", "alice", "--db", db, "--json"]).stdout)["sealed"] as? Bool == true)
        expectOneLineError(try chipsite(["key", "seal", "--new-passphrase-file", p2, "--db", db]), containing: "already sealed")
        // Wrong current passphrase: nothing changes.
        let before = fileBytes(db)
        expectOneLineError(
            try chipsite(["key", "passphrase", "--passphrase-file", p2, "--new-passphrase-file", p1, "--db", db]),
            containing: "wrong passphrase")
        expectOneLineError(try chipsite(["key", "unseal", "--db", db]), containing: "sealed")
        #expect(fileBytes(db) == before)

        #expect(try chipsite(["key", "passphrase", "--passphrase-file", p1, "--new-passphrase-file", p2, "--db", db]).code == 0)
        // The new passphrase opens every key: a user can be added with it.
        #expect(try chipsite(["user", "add", "bob", "--name", "Bob", "--db", db, "--passphrase-file", p2]).code == 0)
        #expect(try chipsite(["key", "unseal", "--passphrase-file", p2, "--db", db]).code == 0)
        #expect(try json(try chipsite(["status", "--db", db, "--json"]).stdout)["sealed"] as? Bool == false)
        #expect(try chipsite(["doctor", "--db", db]).stdout.contains("every user key opens"))
        expectOneLineError(try chipsite(["key", "unseal", "--db", db]), containing: "not sealed")
        expectOneLineError(try chipsite(["key", "passphrase", "--new-passphrase-file", p1, "--db", db]), containing: "not sealed")
        expectOneLineError(try chipsite(["key", "seal", "--db", db]), containing: "--new-passphrase-file")
        #expect(try json(try chipsite(["key", "show", "--db", db, "--json"]).stdout)["agent"] as? String == agent)
    }

    @Test func newKeyIsRefusedWhileTalliesExistUnlessForced() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        let old = try json(try chipsite(["status", "--db", db, "--json"]).stdout)["agent"] as? String ?? ""
        let made = try chipsite(["key", "new", "--db", db, "--json"])
        #expect(made.code == 0, "\(made.stderr)")
        let first = try json(made.stdout)
        let agent = try #require(first["agent"] as? String)
        #expect(agent != old && first["old_agent"] as? String == old && first["certificates_reissued"] as? Int == 1)
        let chad = try json(try chipsite(["user", "show", "alice", "--db", db, "--json"]).stdout)["chad"] as? String
        #expect(chad?.contains(agent) == true)

        _ = try run(
            "/usr/bin/env",
            [
                "python3", "-c",
                """
                import sqlite3,sys
                c=sqlite3.connect(sys.argv[1])
                c.execute("insert into tallies (uuid,cuid,side,partner_agent,partner_cuid,partner_host,partner_port,state,core,created,updated) values (?,?,?,?,?,?,?,?,?,?,?)",
                          ('1'*36,'alice','stock','A'*43,'bob','b.example',65430,'open','{}','now','now'))
                c.commit()
                """, db
            ])
        let before = fileBytes(db)
        let refused = try chipsite(["key", "new", "--db", db])
        expectOneLineError(refused, containing: "partners know the old agent id")
        #expect(refused.stderr.contains("--force"))
        #expect(fileBytes(db) == before)
        let forced = try chipsite(["key", "new", "--force", "--db", db])
        #expect(forced.code == 0, "\(forced.stderr)")
        #expect(forced.stdout.contains("Warning: 1 tallies"))
        #expect(try json(try chipsite(["status", "--db", db, "--json"]).stdout)["agent"] as? String != agent)
    }
}
