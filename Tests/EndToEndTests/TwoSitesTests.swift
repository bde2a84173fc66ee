import Foundation
import Testing
import TestSupport

/// Two real `chipsite serve` processes, two site files, loopback ports:
/// tally tickets and the tally protocol end to end (protocol sections 5-7).
@Suite(.serialized) struct TwoSitesTests {
    struct Pair {
        let dir: TempDir
        let a: E2ESite, b: E2ESite
        init() throws {
            dir = try TempDir()
            a = try E2ESite(dir: dir, name: "a", user: "alice", port: freePort())
            b = try E2ESite(dir: dir, name: "b", user: "bob", port: freePort())
        }
    }

    @Test func ticketRequestAcceptOpensTheSameTallyOnBothSides() throws {
        let p = try Pair()
        let sa = try p.a.serve(), sb = try p.b.serve()
        defer { sa.stop(); sb.stop() }
        let ticket = try p.b.ticket(["--limit", "25.5", "--memo", "groceries"])
        let req = try p.a.cli(["tally", "request", "alice", ticket, "--json"])
        #expect(req.code == 0, "\(req.stderr)")
        let offered = try json(req.stdout)
        #expect(offered["state"] as? String == "P.offer")
        let id = try #require(offered["id"] as? String)
        let acc = try p.a.cli(["tally", "accept", String(id.prefix(8))])
        #expect(acc.code == 0, "\(acc.stderr)")
        #expect(try eventually { (try p.b.tally(id)["state"] as? String) == "open" })
        let ta = try p.a.tally(id), tb = try p.b.tally(id)
        for t in [ta, tb] {
            #expect(t["state"] as? String == "open")
            #expect(t["signatures_valid"] as? Bool == true)
            #expect((t["terms"] as? [String: Any])?["stock"] as? [String: Any] != nil)
        }
        #expect(ta["hash"] as? String == tb["hash"] as? String)
        #expect(ta["side"] as? String == "foil" && tb["side"] as? String == "stock")
        #expect(((tb["terms"] as? [String: Any])?["stock"] as? [String: Any])?["limit"] as? Int == 25_500)
        #expect(ta["memo"] as? String == "groceries")
        // The ticket is spent: a second request is refused by the issuer.
        #expect(try p.a.cli(["user", "add", "carol", "--name", "Carol"]).code == 0)
        expectOneLineError(try p.a.cli(["tally", "request", "carol", ticket]), containing: "refused the ticket")
        #expect(try p.b.tallies().count == 1)
    }

    @Test func aTicketQRCodeWrittenToPNGDecodesToTheLink() throws {
        let p = try Pair()
        let png = p.dir.file("ticket.png"), svg = p.dir.file("ticket.svg")
        let link = try p.b.ticket(["--output", png], format: "link")
        let decoded = try run("/usr/bin/zbarimg", ["--raw", "-q", "-Sbinary", png])
        #expect(decoded.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == link)
        _ = try p.b.ticket(["--output", svg])
        let svgText = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(svgText.contains("<svg") && svgText.contains("<path"))
        expectOneLineError(try p.b.cli(["ticket", "tally", "bob", "--output", p.dir.file("x.gif")]), code: 2, containing: ".png or .svg")
        // The code carries the token: an existing file is never overwritten,
        // the file is private, and a refused ticket is not left in the site.
        #expect(try FileManager.default.attributesOfItem(atPath: png)[.posixPermissions] as? Int == 0o600)
        let tickets = { try json(try p.b.cli(["status", "--json"]).stdout)["tickets"] as? Int }
        let before = try tickets()
        let pngBytes = fileBytes(png)
        expectOneLineError(try p.b.cli(["ticket", "tally", "bob", "--output", png]), containing: "refusing to overwrite")
        #expect(fileBytes(png) == pngBytes)
        expectOneLineError(try p.b.cli(["ticket", "tally", "bob", "--expires", "366d"]), code: 2, containing: "at most 365d")
        expectOneLineError(try p.b.cli(["ticket", "tally", "bob", "--output", p.dir.file("nodir/t.png")]), containing: "cannot create")
        #expect(try tickets() == before)
        let text = try p.b.cli(["ticket", "tally", "bob"])
        #expect(text.stdout.contains("QR code not drawn"), "not a terminal: a notice instead of the code")
        #expect(text.stdout.contains("https://mychips.org/invite?token="))
    }

    @Test func aSealedSiteServesWithItsPassphrase() throws {
        let dir = try TempDir()
        let pass = dir.file("pass")
        try Data("sealed site pass\n".utf8).write(to: URL(fileURLWithPath: pass))
        let db = dir.file("s.db")
        #expect(try chipsite(["init", "--db", db, "--host", "127.0.0.1", "--passphrase-file", pass]).code == 0)
        // Without the passphrase serve refuses with one line; with it, it runs.
        expectOneLineError(try chipsite(["serve", "--db", db, "--listen", "127.0.0.1:0"]), containing: "sealed")
        let s = try ServeProcess(db: db, extra: ["--passphrase-file", pass])
        #expect(s.stop() == 0)
    }

    @Test func refusingTheOfferVoidsItOnBothSides() throws {
        let p = try Pair()
        let sa = try p.a.serve(), sb = try p.b.serve()
        defer { sa.stop(); sb.stop() }
        let req = try json(try p.a.cli(["tally", "request", "alice", try p.b.ticket(format: "link"), "--json"]).stdout)
        let id = try #require(req["id"] as? String)
        #expect(try p.a.cli(["tally", "refuse", id]).code == 0)
        #expect(try eventually { (try p.b.tally(id)["state"] as? String) == "void" })
        #expect(try p.a.tally(id)["state"] as? String == "void")
        expectOneLineError(try p.a.cli(["tally", "accept", id]), containing: "not an offer")
    }

    @Test func acceptAtOnceWhenTheOfferAsksNoCredit() throws {
        let p = try Pair()
        let sa = try p.a.serve(), sb = try p.b.serve()
        defer { sa.stop(); sb.stop() }
        let r = try json(try p.a.cli(["tally", "request", "alice", try p.b.ticket(["--limit", "10"]), "--accept", "--json"]).stdout)
        #expect(r["state"] as? String == "open")
        let id = try #require(r["id"] as? String)
        #expect(try eventually { (try p.b.tally(id)["state"] as? String) == "open" })
    }

    @Test func refusalsOpenNoTally() throws {
        let p = try Pair()
        let sa = try p.a.serve(), sb = try p.b.serve()
        defer { sa.stop(); sb.stop() }
        // Malformed ticket text.
        for bad in ["hello", "{\"invite\":{}}", "https://mychips.org/invite?token=xyz&chad=%7B%7D", "@/nonexistent"] {
            let r = try p.a.cli(["tally", "request", "alice", bad])
            #expect(r.code == 1 && r.stderr.hasPrefix("chipsite: error: "), "\(bad): \(r.stderr)")
        }
        // Expired: the JSON form says so locally; the link form is refused by the issuer.
        let expiredJSON = try p.b.ticket(["--expires", "1s"])
        // The text form holds the ticket twice: as JSON (with its expiry) and as the link.
        let text = try p.b.ticket(["--expires", "1s"], format: "text").split(separator: "\n").map(String.init)
        let expiredLink = try #require(text.first { $0.hasPrefix("https://") })
        let linkTicket = try #require(text.first { $0.hasPrefix("{") })
        // Both sites and this test read the same clock: wait until it is past both expiries.
        let expiries = try [expiredJSON, linkTicket].map { try #require(ticketExpiry($0)) }
        #expect(waitUntil(timeout: 10) { expiries.allSatisfy { Date() > $0 } }, "the tickets expire")
        expectOneLineError(try p.a.cli(["tally", "request", "alice", expiredJSON]), containing: "expired")
        expectOneLineError(try p.a.cli(["tally", "request", "alice", expiredLink]), containing: "refused the ticket")
        // Bound to another requester.
        let bound = try p.b.ticket(["--for", "zed:\(try p.a.agent())@127.0.0.1:\(p.a.port)"])
        expectOneLineError(try p.a.cli(["tally", "request", "alice", bound]), containing: "refused the ticket")
        #expect(try p.b.tallies().isEmpty)
        #expect(try p.a.tallies().allSatisfy { $0["state"] as? String == "void" })
    }

    @Test func lockdownAndLockedUsersRefuseNewTallies() throws {
        let p = try Pair()
        let sa = try p.a.serve(), sb = try p.b.serve()
        defer { sa.stop(); sb.stop() }
        let ticket = try p.b.ticket()
        #expect(try p.b.cli(["lockdown", "on"]).code == 0)
        expectOneLineError(try p.a.cli(["tally", "request", "alice", ticket]), containing: "refused the ticket")
        expectOneLineError(try p.b.cli(["ticket", "tally", "bob"]), containing: "locked down")
        #expect(try p.b.cli(["lockdown", "off"]).code == 0)
        let second = try p.b.ticket()
        #expect(try p.b.cli(["user", "lock", "bob"]).code == 0)
        expectOneLineError(try p.a.cli(["tally", "request", "alice", second]), containing: "refused the ticket")
        expectOneLineError(try p.b.cli(["ticket", "tally", "bob"]), containing: "locked")
        #expect(try p.b.tallies().isEmpty)
        #expect(try p.b.cli(["user", "unlock", "bob"]).code == 0)
        #expect(try json(try p.a.cli(["tally", "request", "alice", try p.b.ticket(), "--json"]).stdout)["state"] as? String == "P.offer")
    }

    @Test func twoConcurrentRedemptionsOfOneTicketGiveOneTally() throws {
        let p = try Pair()
        let c = try E2ESite(dir: p.dir, name: "c", user: "carol", port: freePort())
        let sa = try p.a.serve(), sb = try p.b.serve(), sc = try c.serve()
        defer { sa.stop(); sb.stop(); sc.stop() }
        let ticket = try p.b.ticket()
        let sites = [p.a, c]
        nonisolated(unsafe) var results = [Result?](repeating: nil, count: 2)
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            results[i] = try? sites[i].cli(["tally", "request", sites[i].user, ticket, "--json"])
        }
        let codes = results.map { $0?.code ?? -1 }.sorted()
        #expect(codes == [0, 1], "\(results.map { $0?.stderr ?? "" })")
        #expect(try p.b.tallies().count == 1)
    }

    @Test func aRestartOfEitherSiteMidDialogEndsTheSame() throws {
        let p = try Pair()
        let ticket = try p.b.ticket()
        // b is down: the request waits in a's outbox.
        let sa = try p.a.serve()
        let queued = try json(try p.a.cli(["tally", "request", "alice", ticket, "--wait", "1", "--json"]).stdout)
        #expect(queued["state"] as? String == "draft")
        var sb = try p.b.serve()
        #expect(try eventually(30) { try p.a.tallies().first?["state"] as? String == "P.offer" }, "offer after b came up")
        let id = try #require(try p.a.tallies().first?["id"] as? String)
        // a is down while its user accepts: the open waits in a's file.
        sa.stop()
        #expect(try p.a.cli(["tally", "accept", id]).code == 0)
        sb.stop()
        sb = try p.b.serve()
        let sa2 = try p.a.serve()
        defer { sa2.stop(); sb.stop() }
        #expect(try eventually(30) { (try p.b.tally(id)["state"] as? String) == "open" })
        #expect(try p.a.tally(id)["hash"] as? String == (try p.b.tally(id)["hash"] as? String))
    }

    @Test func anOfferWhoseSignatureDoesNotVerifyOpensNothing() throws {
        let p = try Pair()
        let fakePort = freePort()
        let sa = try p.a.serve()
        defer { sa.stop() }
        // An independent fake issuer that signs its offer with the wrong key.
        let fake = Process()
        fake.executableURL = URL(fileURLWithPath: try PeerVenv.python())
        fake.arguments = [PeerVenv.script, "forged-offer", "\(fakePort)"]
        let out = Pipe()
        fake.standardOutput = out
        fake.standardError = FileHandle.nullDevice
        try fake.run()
        defer { if fake.isRunning { fake.terminate() } }
        let first = out.fileHandleForReading.availableData
        let agent = try #require(try json(String(decoding: first.prefix { $0 != 0x0A }, as: UTF8.self))["agent"] as? String)
        let chad = "{\"cuid\":\"issuer\",\"agent\":\"\(agent)\",\"host\":\"127.0.0.1\",\"port\":\(fakePort)}"
        let ticket = "{\"invite\":{\"token\":\"\(String(repeating: "c", count: 32))\",\"expires\":\"2099-01-01T00:00:00.000Z\",\"chad\":\(chad)}}"
        let r = try p.a.cli(["tally", "request", "alice", ticket, "--wait", "6"])
        expectOneLineError(r, containing: "signature")
        #expect(try p.a.tallies().allSatisfy { $0["state"] as? String != "P.offer" && $0["state"] as? String != "open" })
    }
}

/// The `expires` of a ticket's JSON form, nil when it has none.
func ticketExpiry(_ ticketJSON: String) -> Date? {
    guard let invite = (try? json(ticketJSON))?["invite"] as? [String: Any], let text = invite["expires"] as? String else { return nil }
    let parser = ISO8601DateFormatter()
    parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return parser.date(from: text)
}
