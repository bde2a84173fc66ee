import Foundation
import Testing
import TestSupport

@Suite struct InitAndStatusTests {
    @Test func initCreatesASiteAndStatusReportsIt() throws {
        let dir = try TempDir()
        let db = dir.file("site.db")
        let made = try chipsite(["init", "--db", db, "--host", "chips.example.org", "--port", "7000", "--json"])
        #expect(made.code == 0, "\(made.stderr)")
        let initJSON = try json(made.stdout)
        let r = try chipsite(["status", "--db", db, "--json"])
        #expect(r.code == 0)
        let s = try json(r.stdout)
        #expect(Set(s.keys) == ["db", "agent", "host", "port", "schema_version", "sealed", "lockdown", "users", "tickets", "tallies"])
        #expect(s["agent"] as? String == initJSON["agent"] as? String)
        #expect((s["agent"] as? String)?.count == 43)
        #expect(s["host"] as? String == "chips.example.org")
        #expect(s["port"] as? Int == 7000)
        #expect(s["db"] as? String == db)
        #expect(s["sealed"] as? Bool == false)
        #expect(s["users"] as? Int == 0)
        #expect((s["schema_version"] as? Int ?? 0) >= 1)

        let human = try chipsite(["status", "--db", db])
        #expect(human.stdout.contains("chips.example.org:7000"))
        var st = stat()
        #expect(stat(db, &st) == 0 && st.st_mode & 0o777 == 0o600)
    }

    @Test func secondInitIsRefusedAndTheFileIsByteIdentical() throws {
        let dir = try TempDir()
        let db = dir.file("site.db")
        #expect(try chipsite(["init", "--db", db, "--host", "a.example"]).code == 0)
        let before = fileBytes(db)
        let again = try chipsite(["init", "--db", db, "--host", "b.example"])
        expectOneLineError(again, containing: "already exists")
        #expect(fileBytes(db) == before)
    }

    @Test func siteFileComesFromTheEnvironment() throws {
        let dir = try TempDir()
        let db = dir.file("env.db")
        let r = try chipsite(["init", "--host", "h.example"], environment: ["CHIPSITE_DB": db])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: db))
        let viaEnv = try chipsite(["status", "--json"], environment: ["CHIPSITE_DB": db])
        #expect(try json(viaEnv.stdout)["host"] as? String == "h.example")
        // --db wins over the environment.
        let explicit = try chipsite(["status", "--json", "--db", dir.file("other.db")], environment: ["CHIPSITE_DB": db])
        expectOneLineError(explicit, containing: "other.db")
    }

    @Test func badFilesGiveOneLineErrorsAndStayUnchanged() throws {
        let dir = try TempDir()
        let junk = dir.file("junk")
        try Data(String(repeating: "hello\n", count: 100).utf8).write(to: URL(fileURLWithPath: junk))
        let before = fileBytes(junk)
        expectOneLineError(try chipsite(["status", "--db", junk]), containing: "not an SQLite database")
        expectOneLineError(try chipsite(["user", "list", "--db", junk]), containing: "not an SQLite database")
        #expect(fileBytes(junk) == before)

        let foreign = dir.file("foreign.sqlite")
        let made = try run(
            "/usr/bin/python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table t(x)'); c.commit()", foreign])
        #expect(made.code == 0)
        let foreignBefore = fileBytes(foreign)
        expectOneLineError(try chipsite(["status", "--db", foreign]), containing: "not a chipsite site")
        expectOneLineError(try chipsite(["user", "add", "x", "--name", "X", "--db", foreign]), containing: "not a chipsite site")
        #expect(fileBytes(foreign) == foreignBefore)

        expectOneLineError(try chipsite(["status", "--db", dir.file("missing.db")]), containing: "chipsite init")
        expectOneLineError(try chipsite(["init", "--db", dir.file("nodir/x.db"), "--host", "h"]), containing: "cannot create")
        expectOneLineError(try chipsite(["init", "--db", dir.file("x.db"), "--host", "bad host"]), containing: "invalid host")
        expectOneLineError(try chipsite(["init", "--db", dir.file("x.db"), "--port", "70000"]), containing: "port")
        #expect(!FileManager.default.fileExists(atPath: dir.file("x.db")))
    }

    @Test func usageErrorsExitTwo() throws {
        // Parser errors and bad option values alike: exit 2, one line, a pointer to --help.
        expectOneLineError(try chipsite(["status", "--no-such-flag"]), code: 2, containing: "see `chipsite status --help`")
        expectOneLineError(try chipsite(["user", "add", "--name", "A"]), code: 2, containing: "Missing expected argument")
        expectOneLineError(try chipsite(["user", "add", "a", "--name", "A", "--type", "x"]), code: 2, containing: "--type must be p or o")
        expectOneLineError(
            try chipsite(["chit", "list", "--limit", "0"]), code: 2, containing: "--limit must be 1-100000 (see `chipsite chit list --help`)")
        expectOneLineError(try chipsite(["serve", "--listen", "nowhere"]), code: 2, containing: "--listen must be HOST:PORT")
        expectOneLineError(try chipsite(["lockdown", "maybe"]), code: 2, containing: "maybe")
        let help = try chipsite(["--help"])
        #expect(help.code == 0)
        #expect(help.stdout.contains("USAGE"))
    }
}

@Suite struct SealedSiteTests {
    @Test func sealedInitUserAddAndWrongPassphrase() throws {
        let dir = try TempDir()
        let db = dir.file("site.db")
        let pass = dir.file("pass")
        let wrong = dir.file("wrong")
        try Data("a long passphrase\n".utf8).write(to: URL(fileURLWithPath: pass))
        try Data("not it\n".utf8).write(to: URL(fileURLWithPath: wrong))
        let made = try chipsite(["init", "--db", db, "--host", "h.example", "--passphrase-file", pass, "--json"])
        #expect(made.code == 0, "\(made.stderr)")
        #expect(try json(made.stdout)["sealed"] as? Bool == true)

        // No passphrase and no terminal: a clear error, nothing written.
        let before = try chipsite(["user", "list", "--db", db, "--json"])
        expectOneLineError(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]), containing: "sealed")
        expectOneLineError(
            try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db, "--passphrase-file", wrong]),
            containing: "wrong passphrase")
        #expect(try chipsite(["user", "list", "--db", db, "--json"]).stdout == before.stdout)

        let added = try chipsite(
            ["user", "add", "alice", "--name", "Alice", "--db", db, "--json"],
            environment: ["CHIPSITE_PASSPHRASE_FILE": pass])
        #expect(added.code == 0, "\(added.stderr)")
        #expect(try json(added.stdout)["sealed"] as? Bool == true)
        expectOneLineError(
            try chipsite(["init", "--db", dir.file("other.db"), "--passphrase-file", dir.file("nope")]),
            containing: "cannot read passphrase file")
    }
}

@Suite struct UserCommandTests {
    @Test func addListShowWithJSONShapes() throws {
        let dir = try TempDir()
        let db = dir.file("site.db")
        #expect(try chipsite(["init", "--db", db, "--host", "chips.example.org"]).code == 0)
        let agent = try json(try chipsite(["status", "--db", db, "--json"]).stdout)["agent"] as? String ?? ""

        let add = try chipsite(["user", "add", "alice", "--name", "Alice Älvsdóttir", "--email", "alice@example.org", "--db", db])
        #expect(add.code == 0, "\(add.stderr)")
        #expect(add.stdout.contains("alice:\(agent)@chips.example.org:65430"))
        #expect(try chipsite(["user", "add", "acme", "--name", "Acme Ltd", "--type", "o", "--db", db]).code == 0)

        let list = try json(try chipsite(["user", "list", "--db", db, "--json"]).stdout)
        let users = try #require(list["users"] as? [[String: Any]])
        #expect(users.map { $0["cuid"] as? String } == ["acme", "alice"])

        let show = try json(try chipsite(["user", "show", "alice", "--db", db, "--json"]).stdout)
        #expect(
            Set(show.keys) == [
                "cuid", "name", "type", "email", "chad", "public", "sealed", "locked", "custody", "created", "certificate", "tallies", "net"
            ])
        #expect(show["name"] as? String == "Alice Älvsdóttir")
        #expect(show["email"] as? String == "alice@example.org")
        #expect(show["type"] as? String == "p")
        #expect(show["chad"] as? String == "alice:\(agent)@chips.example.org:65430")
        let cert = try #require(show["certificate"] as? [String: Any])
        #expect(Set(cert.keys) == ["chad", "type", "name", "public", "date", "connect"])
        let chad = try #require(cert["chad"] as? [String: Any])
        #expect(chad["cuid"] as? String == "alice" && chad["agent"] as? String == agent && chad["port"] as? Int == 65430)
        let jwk = try #require(cert["public"] as? [String: Any])
        #expect(jwk["kty"] as? String == "OKP" && jwk["crv"] as? String == "Ed25519")
        #expect(jwk["x"] as? String == show["public"] as? String)

        let human = try chipsite(["user", "show", "alice", "--db", db])
        #expect(human.stdout.contains("\"kty\": \"OKP\""))
        #expect(try chipsite(["user", "list", "--db", db]).stdout.contains("alice"))
        #expect(try json(try chipsite(["status", "--db", db, "--json"]).stdout)["users"] as? Int == 2)
    }

    @Test func refusalsWriteNothing() throws {
        let dir = try TempDir()
        let db = dir.file("site.db")
        #expect(try chipsite(["init", "--db", db, "--host", "h.example"]).code == 0)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        let before = try chipsite(["user", "list", "--db", db, "--json"]).stdout
        expectOneLineError(try chipsite(["user", "add", "alice", "--name", "Again", "--db", db]), containing: "already exists")
        for bad in ["bad/cuid", ".dot", "", String(repeating: "x", count: 65), "a b"] {
            expectOneLineError(try chipsite(["user", "add", bad, "--name", "X", "--db", db]), containing: "invalid CUID")
        }
        expectOneLineError(try chipsite(["user", "add", "bob", "--name", "B", "--email", "nope", "--db", db]), containing: "email")
        expectOneLineError(try chipsite(["user", "add", "bob", "--name", "B", "--type", "x", "--db", db]), code: 2, containing: "--type")
        expectOneLineError(try chipsite(["user", "add", "bob", "--name", "  ", "--db", db]), containing: "name")
        expectOneLineError(try chipsite(["user", "show", "nobody", "--db", db]), containing: "no user nobody")
        #expect(try chipsite(["user", "list", "--db", db, "--json"]).stdout == before)
    }
}
