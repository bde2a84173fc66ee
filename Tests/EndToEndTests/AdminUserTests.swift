import Foundation
import Testing
import TestSupport

@Suite struct AdminUserTests {
    /// Milliseconds since 1970 of a date as the site writes it (ISO 8601 UTC with milliseconds).
    static func milliseconds(_ text: String) -> Int64? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text).map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
    }

    @Test func editReissuesTheCertificateAndKeepsTheKey() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--email", "a@example.org", "--db", db]).code == 0)
        let before = try json(try chipsite(["user", "show", "alice", "--db", db, "--json"]).stdout)
        // The new certificate's date differs once the clock (milliseconds) has moved past the old one's.
        let created = try #require(Self.milliseconds((before["certificate"] as? [String: Any])?["date"] as? String ?? ""))
        #expect(waitUntil(timeout: 5, every: 0.001) { wallClockMilliseconds() > created })
        let r = try chipsite(["user", "edit", "alice", "--name", "Alice Smith", "--type", "o", "--db", db, "--json"])
        #expect(r.code == 0, "\(r.stderr)")
        let after = try json(r.stdout)
        #expect(after["name"] as? String == "Alice Smith" && after["type"] as? String == "o")
        #expect(after["email"] as? String == "a@example.org" && after["public"] as? String == before["public"] as? String)
        let cert = try #require(after["certificate"] as? [String: Any])
        let oldCert = try #require(before["certificate"] as? [String: Any])
        #expect(cert["name"] as? String == "Alice Smith" && cert["date"] as? String != oldCert["date"] as? String)
        #expect(try chipsite(["user", "edit", "alice", "--email", "", "--db", db]).code == 0)
        #expect(try json(try chipsite(["user", "show", "alice", "--db", db, "--json"]).stdout)["email"] is NSNull)

        let unchanged = fileBytes(db)
        expectOneLineError(try chipsite(["user", "edit", "alice", "--db", db]), code: 2, containing: "nothing to change")
        expectOneLineError(try chipsite(["user", "edit", "alice", "--email", "nope", "--db", db]), containing: "email")
        expectOneLineError(try chipsite(["user", "edit", "alice", "--type", "x", "--db", db]), code: 2, containing: "--type")
        expectOneLineError(try chipsite(["user", "edit", "alice", "--name", " ", "--db", db]), containing: "name")
        expectOneLineError(try chipsite(["user", "edit", "nobody", "--name", "N", "--db", db]), containing: "no user nobody")
        #expect(fileBytes(db) == unchanged)
    }

    @Test func plainExportImportRoundTripsAndRefusesDuplicates() throws {
        let dir = try TempDir()
        let a = try adminSite(dir, host: "a.example", name: "a.db")
        let b = try adminSite(dir, host: "b.example", name: "b.db")
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--email", "a@example.org", "--db", a]).code == 0)
        #expect(try chipsite(["user", "lock", "alice", "--db", a]).code == 0)
        let file = dir.file("alice.json")
        let exported = try chipsite(["user", "export", "alice", "--output", file, "--db", a])
        #expect(exported.code == 0, "\(exported.stderr)")
        var st = stat()
        #expect(stat(file, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let doc = try json(String(decoding: try #require(fileBytes(file)), as: UTF8.self))
        #expect(Set(doc.keys) == ["format", "version", "cuid", "certificate", "public", "secret", "sealed", "locked", "created"])
        #expect(doc["format"] as? String == "chipsite-user" && doc["sealed"] as? Bool == false)
        #expect(try chipsite(["user", "export", "alice", "--db", a]).stdout.contains("\"chipsite-user\""))
        expectOneLineError(try chipsite(["user", "export", "alice", "--output", file, "--db", a]), containing: "refusing to overwrite")

        let imported = try chipsite(["user", "import", file, "--db", b, "--json"])
        #expect(imported.code == 0, "\(imported.stderr)")
        let user = try json(imported.stdout)
        let bAgent = try json(try chipsite(["status", "--db", b, "--json"]).stdout)["agent"] as? String ?? ""
        #expect(user["public"] as? String == doc["public"] as? String)
        #expect(user["chad"] as? String == "alice:\(bAgent)@b.example:65430")
        #expect(user["email"] as? String == "a@example.org" && user["locked"] as? Bool == true)
        #expect(try chipsite(["doctor", "--db", b]).stdout.contains("every user key opens"))

        let before = fileBytes(b)
        expectOneLineError(try chipsite(["user", "import", file, "--db", b]), containing: "already exists")
        // The same key under another CUID is refused too.
        let renamed = String(decoding: try #require(fileBytes(file)), as: UTF8.self)
            .replacingOccurrences(of: "\"cuid\" : \"alice\"", with: "\"cuid\" : \"alias\"")
            .replacingOccurrences(of: "\"cuid\": \"alice\"", with: "\"cuid\": \"alias\"")
        try Data(renamed.utf8).write(to: URL(fileURLWithPath: dir.file("alias.json")))
        expectOneLineError(try chipsite(["user", "import", dir.file("alias.json"), "--db", b]), containing: "already has the key")
        #expect(fileBytes(b) == before)
    }

    @Test func malformedExportsAreRefusedWithNothingWritten() throws {
        let dir = try TempDir()
        let a = try adminSite(dir, name: "a.db")
        let b = try adminSite(dir, name: "b.db")
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", a]).code == 0)
        #expect(try chipsite(["user", "add", "bob", "--name", "Bob", "--db", a]).code == 0)
        let good = try json(try chipsite(["user", "export", "alice", "--db", a]).stdout)
        let bob = try json(try chipsite(["user", "export", "bob", "--db", a]).stdout)
        func write(_ name: String, _ object: [String: Any]) throws -> String {
            let path = dir.file(name)
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
            return path
        }
        func variant(_ change: (inout [String: Any]) -> Void) -> [String: Any] { var o = good; change(&o); return o }
        let before = fileBytes(b)
        let cases: [(String, [String: Any], String)] = [
            ("format", variant { $0["format"] = "something" }, "not a chipsite user export"),
            ("version", variant { $0["version"] = 99 }, "version"),
            ("extra", variant { $0["extra"] = 1 }, "unknown field"),
            ("cuid", variant { $0["cuid"] = "../x" }, "invalid CUID"),
            ("othercuid", variant { $0["cuid"] = "carol" }, "another user"),
            ("public", variant { $0["public"] = bob["public"] }, "does not match its certificate"),
            ("secret", variant { $0["secret"] = bob["secret"] }, "does not match its certificate"),
            ("short", variant { $0["secret"] = "AAAA" }, "not a chipsite stored key"),
            ("sealedflag", variant { $0["sealed"] = true }, "sealed flag"),
            ("nocert", variant { $0.removeValue(forKey: "certificate") }, "without certificate"),
            ("created", variant { $0["created"] = "yesterday" }, "created"),
            ("lockedtext", variant { $0["locked"] = "yes" }, "without locked"),
            ("nolocked", variant { $0.removeValue(forKey: "locked") }, "without locked")
        ]
        for (name, object, needle) in cases {
            expectOneLineError(try chipsite(["user", "import", try write(name + ".json", object), "--db", b]), containing: needle)
        }
        try Data("not json".utf8).write(to: URL(fileURLWithPath: dir.file("junk")))
        expectOneLineError(try chipsite(["user", "import", dir.file("junk"), "--db", b]), containing: "not a chipsite user export")
        try Data(repeating: 0x20, count: 70_000).write(to: URL(fileURLWithPath: dir.file("big")))
        expectOneLineError(try chipsite(["user", "import", dir.file("big"), "--db", b]), containing: "too large")
        expectOneLineError(try chipsite(["user", "import", dir.file("missing"), "--db", b]), containing: "cannot read")
        #expect(fileBytes(b) == before)
    }

    @Test func sealedKeysMoveOnlyWithTheSamePassphrase() throws {
        let dir = try TempDir()
        let pass = dir.file("pass"), wrong = dir.file("wrong")
        try Data("shared passphrase\n".utf8).write(to: URL(fileURLWithPath: pass))
        try Data("another one\n".utf8).write(to: URL(fileURLWithPath: wrong))
        let a = dir.file("a.db"), b = dir.file("b.db")
        let env = ["CHIPSITE_PASSPHRASE_FILE": pass]
        #expect(try chipsite(["init", "--db", a, "--host", "a.example"], environment: env).code == 0)
        #expect(try chipsite(["init", "--db", b, "--host", "b.example"], environment: env).code == 0)
        let plainSite = try adminSite(dir, name: "plain.db")
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", a], environment: env).code == 0)
        #expect(try chipsite(["user", "add", "bob", "--name", "Bob", "--db", plainSite]).code == 0)
        let sealedFile = dir.file("alice.json"), plainFile = dir.file("bob.json")
        #expect(try chipsite(["user", "export", "alice", "--output", sealedFile, "--db", a]).code == 0)
        #expect(try chipsite(["user", "export", "bob", "--output", plainFile, "--db", plainSite]).code == 0)
        let doc = try json(String(decoding: try #require(fileBytes(sealedFile)), as: UTF8.self))
        #expect(doc["sealed"] as? Bool == true && (doc["seal"] as? [String: Any])?["salt"] is String)

        // A sealed key never lands in a site that is not sealed.
        expectOneLineError(try chipsite(["user", "import", sealedFile, "--db", plainSite]), containing: "sealed with the same passphrase")
        // The wrong passphrase opens neither the site nor the key.
        let before = fileBytes(b)
        expectOneLineError(try chipsite(["user", "import", sealedFile, "--db", b, "--passphrase-file", wrong]), containing: "wrong passphrase")
        expectOneLineError(try chipsite(["user", "import", sealedFile, "--db", b]), containing: "sealed")
        #expect(fileBytes(b) == before)

        let r = try chipsite(["user", "import", sealedFile, "--db", b, "--json"], environment: env)
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try json(r.stdout)["sealed"] as? Bool == true)
        // A plain key is sealed on import into a sealed site.
        let p = try chipsite(["user", "import", plainFile, "--db", b, "--json"], environment: env)
        #expect(p.code == 0, "\(p.stderr)")
        #expect(try json(p.stdout)["sealed"] as? Bool == true)
        let doctor = try chipsite(["doctor", "--db", b], environment: env)
        #expect(doctor.stdout.contains("every user key opens"), "\(doctor.stdout)")
    }
}
