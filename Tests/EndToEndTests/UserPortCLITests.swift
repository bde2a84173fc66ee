import Foundation
import Testing
import TestSupport

/// The admin's user-port commands with the built binary: `user ticket`,
/// `user device list|revoke`, `user add --custody`.
@Suite struct UserPortCLITests {
    /// Inserts a device row for `cuid` as a registration would (the user port
    /// itself is serve's); returns its id (43 base64url characters).
    static func insertDevice(_ db: String, cuid: String, name: String) throws -> String {
        let script = """
            import base64, os, sqlite3, sys, time
            key = os.urandom(32)
            id = base64.urlsafe_b64encode(key).rstrip(b'=').decode()
            c = sqlite3.connect(sys.argv[1])
            c.execute("INSERT INTO devices (id, cuid, public, name, scopes, created) VALUES (?, ?, ?, ?, ?, ?)",
                      (id, sys.argv[2], key, sys.argv[3], '["read","devices"]', int(time.time() * 1000)))
            c.commit()
            print(id)
            """
        let r = try run("/usr/bin/env", ["python3", "-c", script, db, cuid, name])
        guard r.code == 0 else { throw RunError("insert failed: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The stored state of every user ticket, in name order.
    static func ticketStates(_ db: String) throws -> [String] {
        let r = try run(
            "/usr/bin/env",
            [
                "python3", "-c",
                "import sqlite3,sys; print(','.join(r[0] for r in sqlite3.connect(sys.argv[1]).execute('SELECT state FROM user_tickets ORDER BY state')))",
                db
            ])
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map(String.init)
    }

    @Test func ticketFormats() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)

        let r = try chipsite(["user", "ticket", "alice", "--format", "json", "--expires", "90m", "--scopes", "read,pay", "--db", db])
        #expect(r.code == 0, "\(r.stderr)")
        let t = try #require(try json(r.stdout)["ticket"] as? [String: Any])
        #expect(t["host"] as? String == "h.example" && t["port"] as? Int == 65431 && t["user"] as? String == "alice")
        let token = try #require(t["token"] as? String)
        #expect(token.count == 32)
        #expect((t["agent"] as? String)?.count == 43)
        #expect(t["expires"] is String)
        // The token is stored only as its hash.
        _ = try chipsite(["status", "--db", db])
        for file in [db, db + "-wal"] {
            if let bytes = fileBytes(file) { #expect(bytes.range(of: Data(token.utf8)) == nil, "the token is in \(file)") }
        }

        let link = try chipsite(["user", "ticket", "alice", "--format", "link", "--db", db]).stdout
        #expect(link.hasPrefix("https://mychips.org/ticket?host=h.example&port=65431&agent="))
        #expect(link.contains("&user=alice&token="))
        // Each new ticket revoked the older open one.
        #expect(try Self.ticketStates(db) == ["open", "revoked"])

        let text = try chipsite(["user", "ticket", "alice", "--db", db])
        #expect(text.code == 0)
        #expect(text.stdout.contains("User ticket for alice at h.example:65431"))
        #expect(text.stdout.contains("scopes read,request,pay,tally,devices"))
        #expect(text.stdout.contains("{\"ticket\":{"))
        #expect(text.stdout.contains("QR code not drawn"), "not a terminal: a notice instead of the code")

        let qr = try chipsite(["user", "ticket", "alice", "--format", "qr", "--db", db])
        #expect(qr.code == 0 && qr.stdout.contains("█"))

        // The user port's own setting.
        #expect(try chipsite(["config", "set", "site.port", "7000", "--db", db]).code == 0)
        let moved = try json(try chipsite(["user", "ticket", "alice", "--format", "json", "--db", db]).stdout)
        #expect((moved["ticket"] as? [String: Any])?["port"] as? Int == 7001)
    }

    @Test func ticketQRCodeFiles() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        let png = dir.file("t.png"), svg = dir.file("t.svg")
        let link = try chipsite(["user", "ticket", "alice", "--format", "link", "--output", png, "--db", db])
        #expect(link.code == 0, "\(link.stderr)")
        #expect(try FileManager.default.attributesOfItem(atPath: png)[.posixPermissions] as? Int == 0o600)
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/zbarimg") {
            let decoded = try run("/usr/bin/zbarimg", ["--raw", "-q", "-Sbinary", png])
            #expect(decoded.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == link.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        #expect(try chipsite(["user", "ticket", "alice", "--output", svg, "--db", db]).code == 0)
        #expect(try String(contentsOfFile: svg, encoding: .utf8).contains("<svg"))
        // An existing file is never overwritten, and the ticket is withdrawn.
        let before = try Self.ticketStates(db)
        expectOneLineError(try chipsite(["user", "ticket", "alice", "--output", png, "--db", db]), containing: "refusing to overwrite")
        expectOneLineError(try chipsite(["user", "ticket", "alice", "--output", dir.file("nodir/t.png"), "--db", db]), containing: "cannot create")
        #expect(try Self.ticketStates(db) == before)
    }

    @Test func ticketErrors() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        let unchanged = fileBytes(db)
        expectOneLineError(try chipsite(["user", "ticket", "nobody", "--db", db]), containing: "no user nobody")
        expectOneLineError(try chipsite(["user", "ticket", "alice", "--scopes", "read,fly", "--db", db]), code: 2, containing: "unknown scope")
        expectOneLineError(try chipsite(["user", "ticket", "alice", "--scopes", "read,read", "--db", db]), code: 2, containing: "twice")
        expectOneLineError(try chipsite(["user", "ticket", "alice", "--expires", "8d", "--db", db]), code: 2, containing: "at most 7d")
        expectOneLineError(try chipsite(["user", "ticket", "alice", "--expires", "soon", "--db", db]), code: 2, containing: "invalid duration")
        expectOneLineError(try chipsite(["user", "ticket", "alice", "--output", dir.file("t.gif"), "--db", db]), code: 2, containing: ".png or .svg")
        #expect(fileBytes(db) == unchanged)
        // Sixteen devices: no more tickets.
        for n in 0..<16 { _ = try Self.insertDevice(db, cuid: "alice", name: "phone \(n)") }
        expectOneLineError(try chipsite(["user", "ticket", "alice", "--db", db]), containing: "has 16 devices")
    }

    @Test func deviceListAndRevoke() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        #expect(try chipsite(["user", "add", "bob", "--name", "Bob", "--db", db]).code == 0)
        #expect(try chipsite(["user", "device", "list", "alice", "--db", db]).stdout.contains("No devices yet"))
        #expect((try json(try chipsite(["user", "device", "list", "alice", "--json", "--db", db]).stdout)["devices"] as? [Any])?.isEmpty == true)

        let id = try Self.insertDevice(db, cuid: "alice", name: "Pixel 7")
        let listed = try json(try chipsite(["user", "device", "list", "alice", "--json", "--db", db]).stdout)
        let devices = try #require(listed["devices"] as? [[String: Any]])
        #expect(devices.count == 1)
        let d = try #require(devices.first)
        #expect(d["device"] as? String == id && d["name"] as? String == "Pixel 7")
        #expect(d["scopes"] as? [String] == ["read", "devices"])
        #expect(d["last_seen"] is NSNull && d["created"] is String && d["revoked"] == nil)
        let text = try chipsite(["user", "device", "list", "alice", "--db", db]).stdout
        #expect(text.contains(id) && text.contains("Pixel 7") && text.contains("active"))

        expectOneLineError(try chipsite(["user", "device", "revoke", "--db", db, "bob", "--", id]), containing: "user bob has no device")
        expectOneLineError(try chipsite(["user", "device", "revoke", "alice", "nope", "--db", db]), containing: "not a device id")
        expectOneLineError(try chipsite(["user", "device", "list", "nobody", "--db", db]), containing: "no user nobody")
        let revoked = try chipsite(["user", "device", "revoke", "--db", db, "alice", "--", id])
        #expect(revoked.code == 0, "\(revoked.stderr)")
        #expect(revoked.stdout.contains("Revoked device \(id) of alice"))
        let after = try json(try chipsite(["user", "device", "list", "alice", "--json", "--db", db]).stdout)
        #expect(((after["devices"] as? [[String: Any]])?.first?["revoked"]) is String)
        #expect(try chipsite(["user", "device", "list", "alice", "--db", db]).stdout.contains("revoked"))
        expectOneLineError(try chipsite(["user", "device", "revoke", "--db", db, "alice", "--", id]), containing: "revoked already")
    }

    @Test func addWithDeviceCustody() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        let r = try chipsite(["user", "add", "dora", "--name", "Dora", "--custody", "device", "--db", db])
        #expect(r.code == 0, "\(r.stderr)")
        #expect(r.stdout.contains("custody device"))
        expectOneLineError(try chipsite(["user", "add", "eve", "--name", "Eve", "--custody", "phone", "--db", db]), code: 2, containing: "--custody")
        #expect(try json(try chipsite(["user", "show", "dora", "--json", "--db", db]).stdout)["custody"] as? String == "device")
        #expect(try chipsite(["user", "show", "dora", "--db", db]).stdout.contains("custody  device"))
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        let users = try #require(try json(try chipsite(["user", "list", "--json", "--db", db]).stdout)["users"] as? [[String: Any]])
        #expect(users.map { $0["custody"] as? String } == ["site", "device"])
        // The site-made key is no key of the user's: it is never exported.
        expectOneLineError(try chipsite(["user", "export", "dora", "--db", db]), containing: "custody device")
    }
}
