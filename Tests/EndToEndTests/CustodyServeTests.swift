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
        let s = try ClientServeTests.Sites()
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
}
