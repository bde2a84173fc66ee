import Foundation
import Synchronization
import Testing
import TestSupport

/// `chipsite client` against real `chipsite serve` processes: the admin's
/// user ticket, register, status, tally list, and an event heard by
/// `client watch` on the partner's site.
@Suite(.serialized) struct ClientServeTests {
    @Test func ticketRegisterStatusListAndWatch() throws {
        let s = try UserPortSites()
        defer { s.stop() }
        let ticket = try s.a.cli(["user", "ticket", "alice", "--format", "link"])
        #expect(ticket.code == 0, "\(ticket.stderr)")
        let reg = try s.client(["register", ticket.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "--name", "laptop", "--json"])
        #expect(reg.code == 0, "\(reg.stderr)")
        #expect(try json(reg.stdout)["user"] as? String == "alice")
        // The ticket is spent: a second registration with it is refused.
        let again = try s.client(["register", ticket.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "--profile", "again", "--timeout", "5"])
        expectOneLineError(again, containing: "refused the registration")

        let status = try s.client(["status", "--json"])
        #expect(status.code == 0, "\(status.stderr)")
        let st = try json(status.stdout)
        #expect((st["grant"] as? [String: Any])?["custody"] as? String == "site")
        #expect(st["cuid"] as? String == "alice")

        let list = try s.client(["tally", "list", "--json"])
        #expect(list.code == 0, "\(list.stderr)")
        let items = try json(list.stdout)["items"] as? [[String: Any]] ?? []
        #expect(items.map { $0["uuid"] as? String } == [s.tally])

        let human = try s.client(["tally", "list"])
        let bobAgent = try s.b.agent()
        #expect(human.stdout.contains(String(s.tally.prefix(8))) && human.stdout.contains("bob:\(bobAgent)"), "\(human.stdout)")
        let shown = try s.client(["tally", "show", String(s.tally.prefix(8))])
        #expect(shown.code == 0 && shown.stdout.contains("state     open"), "\(shown.stdout) \(shown.stderr)")

        let admin = try s.a.cli(["user", "device", "list", "alice", "--json"])
        #expect(admin.stdout.contains("laptop"), "\(admin.stdout)")

        // bob's device on site b hears of alice's request made from her device on a.
        let bobTicket = try s.b.cli(["user", "ticket", "bob", "--format", "json"])
        #expect(try s.client(["register", bobTicket.stdout, "--profile", "bob"]).code == 0)
        let config = s.config
        let watched = Mutex<Result?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let r = try? chipsite(
                ["client", "watch", "--profile", "bob", "--count", "1", "--topics", "invoice"], environment: ["XDG_CONFIG_HOME": config], timeout: 60)
            watched.withLock { $0 = r }
            done.signal()
        }
        Thread.sleep(forTimeInterval: 2)
        let request = try s.client(["request", s.tally, "2.5", "--memo", "for the tea", "--json"])
        #expect(request.code == 0, "\(request.stderr)")
        let invoice = try json(request.stdout)["uuid"] as? String
        #expect(done.wait(timeout: .now() + 60) == .success)
        let w = try #require(watched.withLock { $0 })
        #expect(w.code == 0, "\(w.stderr)")
        let event = try json(w.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(event["event"] as? String == "invoice")
        #expect((event["data"] as? [String: Any])?["uuid"] as? String == invoice)
        #expect((event["data"] as? [String: Any])?["units"] as? Int == 2500)
        let seq = String(decoding: fileBytes(config + "/chipsite/client/bob/seq") ?? Data(), as: UTF8.self)
        #expect(seq == "\(event["seq"] as? Int ?? -1)\n")

        // alice pays from her device: the partner's site commits it.
        let pay = try s.client(["pay", "bob:\(bobAgent)", "1.5", "--json"])
        #expect(pay.code == 0, "\(pay.stderr)")
        #expect(try eventually { (try s.b.tally(s.tally)["balance"] as? Int).map { abs($0) } == 1500 })
    }

    /// Devices on both sides open a tally (invite, redeem, accept), pay on it,
    /// and pay by a linear lift.
    @Test func inviteRedeemAcceptPayAndLift() throws {
        let s = try UserPortSites(tally: false)
        defer { s.stop() }
        for (site, user) in [(s.a, "alice"), (s.b, "bob")] {
            let t = try site.cli(["user", "ticket", user, "--format", "json"])
            let r = try s.client(["register", t.stdout, "--profile", user])
            #expect(r.code == 0, "\(r.stderr)")
        }
        let invite = try s.client(["tally", "invite", "--as", "stock", "--limit", "100", "--profile", "bob", "--json"])
        #expect(invite.code == 0, "\(invite.stderr)")
        let link = try #require(try json(invite.stdout)["link"] as? String)
        let redeem = try s.client(["tally", "redeem", link, "--profile", "alice", "--json"])
        #expect(redeem.code == 0, "\(redeem.stderr)")
        func tallies(_ profile: String) throws -> [[String: Any]] {
            try json(try s.client(["tally", "list", "--profile", profile, "--json"]).stdout)["items"] as? [[String: Any]] ?? []
        }
        #expect(try eventually { try tallies("alice").first?["state"] as? String == "P.offer" })
        let uuid = try #require(try tallies("alice").first?["uuid"] as? String)
        let accept = try s.client(["tally", "accept", String(uuid.prefix(8)), "--profile", "alice"])
        #expect(accept.code == 0, "\(accept.stderr)")
        #expect(try eventually { try tallies("bob").first?["state"] as? String == "open" })
        let pay = try s.client(["pay", uuid, "2", "--profile", "alice", "--json"])
        #expect(pay.code == 0, "\(pay.stderr)")
        #expect(try eventually { (try s.b.tally(uuid)["balance"] as? Int).map { abs($0) } == 2000 })
        let chits = try json(try s.client(["chit", "list", "--profile", "bob", "--json"]).stdout)["items"] as? [[String: Any]] ?? []
        #expect(chits.count == 1)
        let lift = try s.client(["lift", "pay", "bob:\(try s.b.agent())", "1", "--profile", "alice", "--json"])
        #expect(lift.code == 0, "\(lift.stderr)")
        let lifts = try s.client(["lift", "list", "--profile", "alice", "--json"])
        #expect(lifts.code == 0, "\(lifts.stderr)")
        // lift.show by the payment's uuid returns the signed authorisation (10.6).
        let paid = try #require(try json(lift.stdout)["uuid"] as? String)
        let show = try runWithInput(
            try chipsiteBinary(), ["client", "raw", "--profile", "alice", "--timeout", "10"],
            input: #"{"id":"s","cmd":"lift.show","args":{"uuid":""# + paid + #""}}"# + "\n",
            environment: ["XDG_CONFIG_HOME": s.config], timeout: 30)
        #expect(show.code == 0, "\(show.stderr)")
        let shown = try json(String(show.stdout.split(separator: "\n").first ?? ""))
        let data = try #require(shown["data"] as? [String: Any], "\(shown)")
        #expect(data["uuid"] as? String == paid && data["kind"] as? String == "line")
        #expect((data["auth"] as? [String: Any])?["uuid"] as? String == paid)
        // Taking the key with a passphrase file that is not there: a one-line error.
        let take = try s.client(["key", "take", "--profile", "alice", "--passphrase-file", "/nonexistent"])
        #expect(take.code == 1 && take.stderr.hasPrefix("chipsite: error: "), "\(take.stderr)")
    }
}
