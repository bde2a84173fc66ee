import Foundation
import Testing
import TestSupport

/// Makes a plain site in `dir` and returns its path.
func adminSite(_ dir: TempDir, host: String = "h.example", name: String = "site.db") throws -> String {
    let db = dir.file(name)
    let r = try chipsite(["init", "--db", db, "--host", host])
    guard r.code == 0 else { throw RunError("init failed: \(r.stderr)") }
    return db
}

@Suite struct AdminConfigTests {
    @Test func listShowsEveryKeyWithDefaultsAndSetValues() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        let list = try json(try chipsite(["config", "list", "--db", db, "--json"]).stdout)
        let entries = try #require(list["config"] as? [[String: Any]])
        let names = entries.compactMap { $0["key"] as? String }
        #expect(names.contains("site.host") && names.contains("site.port") && names.contains("site.lockdown"))
        #expect(names.contains("peer.idle_timeout") && names.contains("peer.max_frame"))
        let idle = try #require(entries.first { $0["key"] as? String == "peer.idle_timeout" })
        #expect(idle["value"] as? String == "60" && idle["default"] as? String == "60" && idle["set"] as? Bool == false)
        #expect(Set(idle.keys) == ["key", "value", "default", "set", "valid", "range", "summary"])

        let set = try chipsite(["config", "set", "peer.idle_timeout", "120", "--db", db])
        #expect(set.code == 0, "\(set.stderr)")
        #expect(set.stdout.contains("restart"))
        let got = try chipsite(["config", "get", "peer.idle_timeout", "--db", db])
        #expect(got.stdout == "120\n")
        let entry = try json(try chipsite(["config", "get", "peer.idle_timeout", "--db", db, "--json"]).stdout)
        #expect(entry["set"] as? Bool == true && entry["default"] as? String == "60")
        let human = try chipsite(["config", "list", "--db", db]).stdout
        #expect(human.contains("peer.idle_timeout") && human.contains("120") && human.contains("(set;"))
        #expect(try chipsite(["config", "unset", "peer.idle_timeout", "--db", db]).code == 0)
        #expect(try chipsite(["config", "get", "peer.idle_timeout", "--db", db]).stdout == "60\n")
    }

    @Test func addressChangeReissuesCertificates() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        #expect(try chipsite(["config", "set", "site.port", "7001", "--db", db]).code == 0)
        #expect(try chipsite(["config", "set", "site.host", "new.example", "--db", db]).code == 0)
        let show = try json(try chipsite(["user", "show", "alice", "--db", db, "--json"]).stdout)
        #expect((show["chad"] as? String)?.hasSuffix("@new.example:7001") == true)
        let status = try json(try chipsite(["status", "--db", db, "--json"]).stdout)
        #expect(status["port"] as? Int == 7001 && status["host"] as? String == "new.example")
        // Unsetting the port stores its default: the site stays usable.
        #expect(try chipsite(["config", "unset", "site.port", "--db", db]).code == 0)
        #expect(try json(try chipsite(["status", "--db", db, "--json"]).stdout)["port"] as? Int == 65430)
    }

    @Test func refusalsAreOneLineAndWriteNothing() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        let before = try chipsite(["config", "list", "--db", db, "--json"]).stdout
        expectOneLineError(try chipsite(["config", "get", "no.such", "--db", db]), containing: "unknown setting")
        expectOneLineError(try chipsite(["config", "set", "no.such", "1", "--db", db]), containing: "unknown setting")
        expectOneLineError(try chipsite(["config", "set", "site.port", "0", "--db", db]), containing: "1-65535")
        expectOneLineError(try chipsite(["config", "set", "site.port", "http", "--db", db]), containing: "1-65535")
        expectOneLineError(try chipsite(["config", "set", "peer.idle_timeout", "0", "--db", db]), containing: "peer.idle_timeout")
        expectOneLineError(try chipsite(["config", "set", "peer.idle_timeout", "nan", "--db", db]), containing: "peer.idle_timeout")
        expectOneLineError(try chipsite(["config", "set", "site.host", "bad host\n", "--db", db]), containing: "invalid host")
        expectOneLineError(try chipsite(["config", "set", "site.lockdown", "maybe", "--db", db]), containing: "on or off")
        expectOneLineError(try chipsite(["config", "unset", "site.host", "--db", db]), containing: "no default")
        expectOneLineError(try chipsite(["config", "list", "--db", dir.file("none.db")]), containing: "chipsite init")
        #expect(try chipsite(["config", "list", "--db", db, "--json"]).stdout == before)
    }
}
