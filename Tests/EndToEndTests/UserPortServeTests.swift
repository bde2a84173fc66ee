import Foundation
import Testing
import TestSupport

/// The user port end to end (protocol section 10): real `chipsite serve`
/// processes, and an independent device client written in Python from
/// protocol.md alone (Resources/userclient.py: noiseprotocol + PyNaCl).
@Suite(.serialized) struct UserPortServeTests {
    static let client = repoRoot + "/Tests/EndToEndTests/Resources/userclient.py"

    /// Runs one userclient.py mode; its JSON line, or nil when it failed (the exit code and stderr with it).
    static func device(_ args: [String], timeout: TimeInterval = 60) throws -> (result: [String: Any]?, code: Int32, stderr: String) {
        let r = try run(try PeerVenv.python(), [client] + args, timeout: timeout)
        guard r.code == 0, let last = r.stdout.split(separator: "\n").last else { return (nil, r.code, r.stderr) }
        return (try json(String(last)), r.code, r.stderr)
    }

    @Test func anIndependentClientRegistersPaysAndHearsOfIt() throws {
        let s = try UserPortSites()
        defer { s.stop() }
        let state = s.dir.file("device.json")
        let registered = try Self.device(["register", try s.userTicket(), state])
        let reg = try #require(registered.result, "\(registered.stderr)")
        #expect(reg["user"] as? String == "alice")

        let paid = try Self.device(["pay", state, "1500", "coffee"])
        let out = try #require(paid.result, "\(paid.stderr)")
        let pay = try #require(out["pay"] as? [String: Any])
        #expect(pay["ok"] as? Bool == true, "\(pay)")
        let data = try #require(pay["data"] as? [String: Any])
        #expect(data["state"] as? String == "chained")  // alice holds the foil: her site chains at once
        #expect(out["replayed"] as? Bool == true)  // the same chit again: the first reply, replayed
        #expect(out["chit_event"] as? Bool == true)
        #expect(out["unknown"] as? String == "unknown_cmd")
        #expect(out["other_users_tally"] as? String == "not_found")
        #expect(out["custody"] as? String == "site")
        let uuid = try #require(data["uuid"] as? String)

        // Exactly one chit, and the partner's site commits it.
        let chits = try json(try s.a.cli(["chit", "list", "--json"]).stdout)["chits"] as? [[String: Any]] ?? []
        #expect(chits.filter { $0["id"] as? String == uuid }.count == 1)
        #expect(try eventually { (try s.b.tally(s.tally)["balance"] as? Int) == 1500 })
        let seqs = try #require(out["seqs"] as? [Int])
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count)

        // A reconnect replays from seq 0 again: the same events, in order, once.
        let again = try Self.device(["events", state, "0", "\(seqs.count)"])
        let replay = try #require(again.result, "\(again.stderr)")
        #expect(replay["seqs"] as? [Int] == seqs)
    }

    @Test func aTokenWorksOnceAndAReplayedMessageOneChangesNothing() throws {
        let s = try UserPortSites()
        defer { s.stop() }
        let ticket = try s.userTicket(format: "link")
        let first = try Self.device(["register", ticket, s.dir.file("one.json")])
        #expect(first.result != nil, "\(first.stderr)")
        // The same token again, from another key: a silent close.
        let second = try Self.device(["register", ticket, s.dir.file("two.json")])
        #expect(second.result == nil && second.code != 0)
        #expect(second.stderr.contains("closed"))
        // A captured message 1 sent again gets not one byte.
        let replayed = try Self.device(["replay-register", try s.userTicket()])
        let r = try #require(replayed.result, "\(replayed.stderr)")
        #expect(r["first"] as? Bool == true)
        #expect(r["second_bytes"] as? Int == 0)
        let devices = try json(try s.a.cli(["user", "device", "list", "alice", "--json"]).stdout)["devices"] as? [[String: Any]] ?? []
        #expect(devices.count == 2)
        // The user protocol's handshake on the peer port: not one byte back, and the site still serves.
        let crossed = try #require(try Self.device(["cross", "127.0.0.1", "\(s.sa.port)", s.sa.agent]).result)
        #expect(crossed["bytes"] as? Int == 0)
        #expect(try Self.device(["register", try s.userTicket(), s.dir.file("three.json")]).result != nil)
    }

    @Test func aRevokedDeviceIsClosedAndCannotComeBack() throws {
        let s = try UserPortSites()
        defer { s.stop() }
        let state = s.dir.file("device.json")
        let reg = try #require(try Self.device(["register", try s.userTicket(), state]).result)
        let device = try #require(reg["device"] as? String)
        // The right key to the wrong site key (another site's agent): IK fails, a silent close.
        var wrong = try json(try String(contentsOfFile: state, encoding: .utf8))
        wrong["agent"] = s.sb.agent
        let wrongState = s.dir.file("wrong.json")
        try JSONSerialization.data(withJSONObject: wrong).write(to: URL(fileURLWithPath: wrongState))
        let misdialed = try Self.device(["events", wrongState, "0", "1"], timeout: 30)
        #expect(misdialed.result == nil && misdialed.stderr.contains("closed"), "\(misdialed.stderr)")
        let revoked = try chipsite(["user", "device", "revoke", "--db", s.a.db, "alice", "--", device])
        #expect(revoked.code == 0, "\(revoked.stderr)")
        let after = try Self.device(["events", state, "0", "1"], timeout: 30)
        #expect(after.result == nil && after.stderr.contains("closed"), "\(after.stderr)")
    }

    @Test func aLockedUserOrALockedDownSiteReadsButMovesNoValue() throws {
        let s = try UserPortSites()
        defer { s.stop() }
        let reg = try s.client(["register", try s.userTicket(), "--json"])
        #expect(reg.code == 0, "\(reg.stderr)")
        #expect(try s.a.cli(["user", "lock", "alice"]).code == 0)
        // serve learns of the lock from the site file; the device's next payment is `locked`.
        var refused: Result?
        #expect(
            try eventually {
                let r = try s.client(["pay", s.tally, "1"])
                refused = r
                return r.code != 0 && r.stderr.contains("locked")
            }, "\(refused?.stderr ?? "")")
        if let refused { expectOneLineError(refused, containing: "locked") }
        let list = try s.client(["tally", "list", "--json"])
        #expect(list.code == 0, "reads work while locked: \(list.stderr)")
        #expect(try s.a.cli(["user", "unlock", "alice"]).code == 0)
        #expect(try s.a.cli(["lockdown", "on"]).code == 0)
        #expect(try eventually { try s.client(["request", s.tally, "1"]).stderr.contains("locked") })
        #expect(try s.a.cli(["lockdown", "off"]).code == 0)
        #expect(try eventually { try s.client(["pay", s.tally, "1", "--json"]).code == 0 })
        // Nothing a locked command asked for was stored: one chit, the last payment.
        let chits = try json(try s.a.cli(["chit", "list", "--json"]).stdout)["chits"] as? [[String: Any]] ?? []
        #expect(chits.count == 1)
    }

    @Test func expiredReplacedAndMisnamedTickets() throws {
        let s = try UserPortSites(tally: false)
        defer { s.stop() }
        // Expired: the site refuses it (silently) once its time is past.
        let short = try s.a.cli(["user", "ticket", "alice", "--expires", "1s", "--format", "json"])
        #expect(short.code == 0, "\(short.stderr)")
        let expires = try #require(((try json(short.stdout))["ticket"] as? [String: Any])?["expires"] as? String)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let deadline = try #require(formatter.date(from: expires))
        #expect(waitUntil(timeout: 5) { Date() > deadline.addingTimeInterval(0.2) })
        let late = try Self.device(["register", short.stdout, s.dir.file("late.json")])
        #expect(late.result == nil && late.stderr.contains("closed"), "\(late.stderr)")
        // Replaced: a newer ticket revokes the older unused one.
        let older = try s.userTicket(), newer = try s.userTicket()
        #expect(try Self.device(["register", older, s.dir.file("older.json")]).result == nil)
        #expect(try Self.device(["register", newer, s.dir.file("newer.json")]).result?["user"] as? String == "alice")
        // A ticket that names another user still registers the token's user (10.2: `user` is informative).
        var ticket = try json(try s.userTicket())
        var inner = try #require(ticket["ticket"] as? [String: Any])
        inner["user"] = "bob"
        ticket["ticket"] = inner
        let text = String(decoding: try JSONSerialization.data(withJSONObject: ticket), as: UTF8.self)
        #expect(try Self.device(["register", text, s.dir.file("misnamed.json")]).result?["user"] as? String == "alice")
    }

    @Test func aPaymentWhoseReplyDiedWithServeIsOneChitAfterTheRetry() throws {
        let s = try UserPortSites()
        defer { s.stop() }
        let state = s.dir.file("device.json"), core = s.dir.file("core.json")
        #expect(try Self.device(["register", try s.userTicket(), state]).result != nil)
        // serve commits the payment (and its reply in the cache), then dies before the reply leaves.
        s.sa.stop()
        let dying = try s.a.serve(["CHIPSITE_TEST_KILL_AT": "reply"])
        let first = try Self.device(["pay-core", state, core, "700"])
        #expect(first.result == nil && first.stderr.contains("closed"), "\(first.stderr)")
        #expect(waitUntil(timeout: 10) { !dying.process.isRunning })
        #expect(dying.process.terminationReason == .uncaughtSignal && dying.process.terminationStatus == SIGKILL)
        // The retry (the same chit) after a restart gets the first reply, replayed; one chit.
        let back = try s.a.serve()
        defer { back.stop() }
        let retry = try #require(try Self.device(["pay-core", state, core, "700"]).result)
        #expect(retry["ok"] as? Bool == true && retry["replayed"] as? Bool == true, "\(retry)")
        let uuid = try #require((try json(String(contentsOfFile: core, encoding: .utf8)))["uuid"] as? String)
        let chits = try json(try s.a.cli(["chit", "list", "--json"]).stdout)["chits"] as? [[String: Any]] ?? []
        #expect(chits.map { $0["id"] as? String } == [uuid])
        #expect(try eventually { (try s.b.tally(s.tally)["balance"] as? Int) == 700 })
    }
}
