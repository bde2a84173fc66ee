import ChipModel
import Foundation
import Testing
import TestSupport

/// Device custody against real `chipsite serve` processes (protocol 10.7):
/// alice's device takes her site-held key (`client key take`: fetch, then
/// confirm in a later session), pays bob with a chit it signed, bob's site
/// commits it, both sites verify the tally, and alice's site file no
/// longer holds her seed.
@Suite(.serialized) struct CustodyServeTests {
    @Test func aDeviceTakesTheKeyAndPays() throws {
        let s = try UserPortSites()
        defer { s.stop() }
        let exported = try s.a.cli(["user", "export", "alice"])
        #expect(exported.code == 0, "\(exported.stderr)")
        let stored = try #require(Base64URL.decode(try json(exported.stdout)["secret"] as? String ?? ""))
        #expect(stored.count == 33, "a plain site stores tag + seed")
        let seed = Array(stored.dropFirst())

        let ticket = try s.a.cli(["user", "ticket", "alice", "--format", "json"])
        let reg = try s.client(["register", ticket.stdout, "--name", "phone"])
        #expect(reg.code == 0, "\(reg.stderr)")
        let pass = s.dir.file("device-pass")
        try Data("device passphrase\n".utf8).write(to: URL(fileURLWithPath: pass))

        let take = try s.client(["key", "take", "--passphrase-file", pass, "--json"])
        #expect(take.code == 0, "\(take.stderr)")
        #expect(try json(take.stdout)["custody"] as? String == "device")
        let status = try s.client(["status", "--json"])
        #expect((try json(status.stdout)["grant"] as? [String: Any])?["custody"] as? String == "device", "\(status.stdout)")
        // A repeat confirm (the key is in sign.key now) gets the same answer.
        let again = try s.client(["key", "take", "--passphrase-file", pass, "--json"])
        #expect(again.code == 0, "\(again.stderr)")
        #expect(try json(again.stdout)["custody"] as? String == "device")

        // The site signs nothing for alice now: the admin CLI cannot pay for her.
        let bobAgent = try s.b.agent()
        let admin = try s.a.cli(["pay", "alice", s.tally, "1"])
        #expect(admin.code != 0)
        // Without the key the device cannot pay either; with it, it can.
        let unsigned = try s.client(["pay", "bob:\(bobAgent)", "1.5", "--passphrase-file", s.dir.file("nonexistent")])
        #expect(unsigned.code != 0)
        let pay = try s.client(["pay", "bob:\(bobAgent)", "1.5", "--passphrase-file", pass, "--json"])
        #expect(pay.code == 0, "\(pay.stderr)")
        #expect(try eventually { (try s.b.tally(s.tally)["balance"] as? Int).map { abs($0) } == 1500 })
        #expect(try eventually { (try s.a.tally(s.tally)["balance"] as? Int).map { abs($0) } == 1500 })

        s.stop()
        for site in [s.a, s.b] {
            let verified = try site.cli(["tally", "verify", s.tally])
            #expect(verified.code == 0, "\(verified.stdout) \(verified.stderr)")
        }
        // serve checkpointed the file when it stopped: no copy of the seed is left.
        for file in [s.a.db, s.a.db + "-wal"] {
            guard let content = FileManager.default.contents(atPath: file) else { continue }
            #expect(content.range(of: Data(seed)) == nil, "the seed is still in \(file)")
        }
        #expect(try s.a.cli(["user", "export", "alice"]).code != 0)
    }

    /// A user added with `--custody device`: its device makes the first key
    /// (`client key new`, me.signkey), hears of bob's offer by a `sign`
    /// event, accepts it with its own signature and pays on the tally.
    @Test func aDeviceUsersFirstKeySignsItsTally() throws {
        let s = try UserPortSites(tally: false)
        defer { s.stop() }
        let added = try s.a.cli(["user", "add", "dora", "--name", "Dora", "--custody", "device"])
        #expect(added.code == 0, "\(added.stderr)")
        for (site, user) in [(s.a, "dora"), (s.b, "bob")] {
            let t = try site.cli(["user", "ticket", user, "--format", "json"])
            let r = try s.client(["register", t.stdout, "--profile", user])
            #expect(r.code == 0, "\(r.stderr)")
        }
        let pass = s.dir.file("dora-pass")
        try Data("dora's passphrase\n".utf8).write(to: URL(fileURLWithPath: pass))
        let new = try s.client(["key", "new", "--profile", "dora", "--passphrase-file", pass, "--json"])
        #expect(new.code == 0, "\(new.stderr)")
        let cert = try #require(try json(new.stdout)["cert"] as? [String: Any])
        let shown = try s.client(["key", "show", "--profile", "dora"])
        let publicKey = try #require((cert["public"] as? [String: Any])?["x"] as? String)
        #expect(shown.stdout.contains(publicKey), "\(shown.stdout) vs \(publicKey)")
        // Only once.
        let again = try s.client(["key", "new", "--profile", "dora", "--passphrase-file", pass])
        #expect(again.code != 0)

        let invite = try s.client(["tally", "invite", "--as", "stock", "--limit", "100", "--profile", "bob", "--json"])
        #expect(invite.code == 0, "\(invite.stderr)")
        let link = try #require(try json(invite.stdout)["link"] as? String)
        let redeem = try s.client(["tally", "redeem", link, "--profile", "dora", "--json"])
        #expect(redeem.code == 0, "\(redeem.stderr)")
        func tallies(_ profile: String) throws -> [[String: Any]] {
            try json(try s.client(["tally", "list", "--profile", profile, "--json"]).stdout)["items"] as? [[String: Any]] ?? []
        }
        #expect(try eventually { try tallies("dora").first?["state"] as? String == "P.offer" })
        let uuid = try #require(try tallies("dora").first?["uuid"] as? String)
        // The offer raised a `sign` event for her device.
        let watched = try s.client(["watch", "--profile", "dora", "--since", "0", "--topics", "sign", "--count", "1"])
        #expect(watched.code == 0, "\(watched.stderr)")
        let event = try json(watched.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let data = event["data"] as? [String: Any]
        #expect(event["event"] as? String == "sign" && data?["kind"] as? String == "accept" && data?["uuid"] as? String == uuid)

        let accept = try s.client(["tally", "accept", String(uuid.prefix(8)), "--profile", "dora", "--passphrase-file", pass])
        #expect(accept.code == 0, "\(accept.stderr)")
        #expect(try eventually { try tallies("bob").first?["state"] as? String == "open" })
        let pay = try s.client(["pay", uuid, "2", "--profile", "dora", "--passphrase-file", pass, "--json"])
        #expect(pay.code == 0, "\(pay.stderr)")
        #expect(try eventually { (try s.b.tally(uuid)["balance"] as? Int).map { abs($0) } == 2000 })
        s.stop()
        for site in [s.a, s.b] {
            let verified = try site.cli(["tally", "verify", uuid])
            #expect(verified.code == 0, "\(verified.stdout) \(verified.stderr)")
        }
    }
}
