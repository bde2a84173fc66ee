import Foundation
import Testing
import TestSupport

@Suite struct AdminLockTests {
    @Test func lockdownOnOffShowsInStatus() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try json(try chipsite(["status", "--db", db, "--json"]).stdout)["lockdown"] as? Bool == false)
        #expect(try chipsite(["lockdown", "--db", db]).stdout == "lockdown off\n")
        let on = try chipsite(["lockdown", "on", "--db", db])
        #expect(on.code == 0 && on.stdout.contains("Lockdown on"))
        #expect(try json(try chipsite(["status", "--db", db, "--json"]).stdout)["lockdown"] as? Bool == true)
        #expect(try chipsite(["status", "--db", db]).stdout.contains("lockdown ON"))
        #expect(try chipsite(["config", "get", "site.lockdown", "--db", db]).stdout == "on\n")
        #expect(try chipsite(["lockdown", "off", "--db", db]).code == 0)
        #expect(try json(try chipsite(["status", "--db", db, "--json"]).stdout)["lockdown"] as? Bool == false)
        let bad = try chipsite(["lockdown", "maybe", "--db", db])
        #expect(bad.code == 2 && bad.stderr.hasPrefix("chipsite: error: "))
        expectOneLineError(try chipsite(["lockdown", "on", "--db", dir.file("none.db")]), containing: "chipsite init")
    }

    @Test func userLockUnlockShowsInShowAndList() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        #expect(try json(try chipsite(["user", "show", "alice", "--db", db, "--json"]).stdout)["locked"] as? Bool == false)
        #expect(try chipsite(["user", "lock", "alice", "--db", db]).stdout.contains("Locked user alice"))
        #expect(try chipsite(["user", "lock", "alice", "--db", db]).stdout.contains("already locked"))
        #expect(try json(try chipsite(["user", "show", "alice", "--db", db, "--json"]).stdout)["locked"] as? Bool == true)
        #expect(try chipsite(["user", "show", "alice", "--db", db]).stdout.contains("locked   yes"))
        #expect(try chipsite(["user", "list", "--db", db]).stdout.contains("(locked)"))
        let list = try json(try chipsite(["user", "list", "--db", db, "--json"]).stdout)["users"] as? [[String: Any]]
        #expect(list?.first?["locked"] as? Bool == true)
        #expect(try chipsite(["user", "unlock", "alice", "--db", db]).stdout.contains("Unlocked user alice"))
        #expect(try json(try chipsite(["user", "show", "alice", "--db", db, "--json"]).stdout)["locked"] as? Bool == false)

        let before = fileBytes(db)
        expectOneLineError(try chipsite(["user", "lock", "nobody", "--db", db]), containing: "no user nobody")
        expectOneLineError(try chipsite(["user", "unlock", "bad/cuid", "--db", db]), containing: "invalid CUID")
        #expect(fileBytes(db) == before)
    }
}
