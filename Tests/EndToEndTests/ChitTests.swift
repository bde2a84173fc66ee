import Foundation
import Synchronization
import Testing
import TestSupport

/// Payments between two real `chipsite serve` processes (protocol section 8).
@Suite(.serialized) struct ChitTests {
    /// Two sites with an open tally: bob (stock) grants alice (foil) `limit`.
    struct OpenTally {
        let dir: TempDir
        let a: E2ESite, b: E2ESite
        let id: String
        init(limit: String = "100000") throws {
            dir = try TempDir()
            a = try E2ESite(dir: dir, name: "a", user: "alice", port: freePort())
            b = try E2ESite(dir: dir, name: "b", user: "bob", port: freePort())
            let sa = try a.serve(), sb = try b.serve()
            defer { sa.stop(); sb.stop() }
            let r = try json(try a.cli(["tally", "request", "alice", try b.ticket(["--limit", limit]), "--accept", "--json"]).stdout)
            id = try #require(r["id"] as? String)
            let bSide = b
            guard try eventually(15, { (try bSide.tally(r["id"] as? String ?? "")["state"] as? String) == "open" }) else {
                throw RunError("the tally did not open")
            }
        }

        func converged(_ count: Int) throws -> Bool {
            let ta = try a.tally(id), tb = try b.tally(id)
            return ta["chain_length"] as? Int == count && tb["chain_length"] as? Int == count
                && ta["chain_head"] as? String == tb["chain_head"] as? String
        }
    }

    @Test func overTheLimitIsRefusedWithAClearMessage() throws {
        let t = try OpenTally(limit: "10")
        // Whose limit it is, how much fits, and how to get more.
        expectOneLineError(
            try t.a.cli(["pay", "alice", t.id, "10.001"]),
            containing: "the credit bob grants alice on this tally (10 CHIPs): at most 10 CHIPs can be paid now")
        // alice grants bob nothing on this tally.
        expectOneLineError(
            try t.b.cli(["pay", "bob", t.id, "1"]),
            containing: "the credit alice grants bob on this tally (0 CHIPs): nothing can be paid now; to pay more, alice pays bob first")
        expectOneLineError(try t.a.cli(["pay", "alice", t.id, "1.0001"]), code: 2, containing: "invalid amount")
        expectOneLineError(try t.a.cli(["pay", "alice", "bob:\(try t.b.agent())@127.0.0.1:\(t.b.port)", "0"]), code: 2, containing: "more than 0")
        expectOneLineError(try t.b.cli(["pay", "alice", t.id, "1"]), containing: "belongs to bob")
        let ok = try t.a.cli(["pay", "alice", t.id, "10", "--json"])
        #expect(ok.code == 0, "\(ok.stderr)")
        #expect(try json(ok.stdout)["state"] as? String == "chained")
    }

    @Test func paymentsWhileThePartnerIsDownArriveWhenItIsBack() throws {
        let t = try OpenTally()
        let sa = try t.a.serve()
        for _ in 0..<10 { #expect(try t.a.cli(["pay", "alice", t.id, "1"]).code == 0) }
        #expect(try t.b.tally(t.id)["chain_length"] as? Int == 0)
        let sb = try t.b.serve()
        defer { sa.stop(); sb.stop() }
        #expect(try eventually(30) { try t.converged(10) })
        // Now bob pays while alice's site is down.
        sa.stop()
        for _ in 0..<5 { #expect(try t.b.cli(["pay", "bob", t.id, "0.5"]).code == 0) }
        let sa2 = try t.a.serve()
        defer { sa2.stop() }
        #expect(try eventually(30) { try t.converged(15) })
        #expect(try t.a.tally(t.id)["balance"] as? Int == 7500)
        #expect(try t.b.tally(t.id)["balance"] as? Int == 7500)
        // user show: the same balance, from each user's side.
        #expect(try json(try t.a.cli(["user", "show", "alice", "--json"]).stdout)["net"] as? Int == -7500)
        #expect(try json(try t.b.cli(["user", "show", "bob", "--json"]).stdout)["net"] as? Int == 7500)
        // serve stops gracefully: exit 0.
        #expect(sa2.stop() == 0)
    }

    /// 1,000 payments, both directions interleaved, while each site is killed
    /// with SIGKILL at random moments (20 kills) and restarted: at the end no
    /// chit is lost or doubled, both chains are equal and verify.
    /// 400 payments (1,000 with `CHIPSITE_LONG=1`) both ways while serve is killed 20 times.
    @Test func paymentsBothWaysSurviveTwentyKills() throws {
        let t = try OpenTally()
        let servers = Mutex<[String: ServeProcess]>(["a": try t.a.serve(), "b": try t.b.serve()])
        let each = ProcessInfo.processInfo.environment["CHIPSITE_LONG"] != nil ? 500 : 200
        // Alice (foil) pays first so that bob (stock, granted no credit) has a
        // balance to pay back from, whatever order the two sites see.
        #expect(try t.a.cli(["pay", "alice", t.id, "300"]).code == 0)
        #expect(try eventually(30) { try t.converged(1) })
        let failures = Mutex([String]())
        let sites = ["a": t.a, "b": t.b]
        let (siteA, siteB, id) = (t.a, t.b, t.id)
        DispatchQueue.concurrentPerform(iterations: 3) { worker in
            if worker == 2 {
                // The killer: 20 SIGKILLs at random moments, alternating sites.
                for k in 0..<20 {
                    Thread.sleep(forTimeInterval: Double.random(in: 0.2...0.8))
                    let name = k % 2 == 0 ? "a" : "b"
                    servers.withLock { s in
                        s[name]?.crash()
                        s[name] = try? sites[name]?.serve()
                    }
                }
                return
            }
            let (site, user, amount) = worker == 0 ? (siteA, "alice", "1") : (siteB, "bob", "0.5")
            for _ in 0..<each {
                let r = try? site.cli(["pay", user, id, amount])
                if r?.code != 0 { failures.withLock { $0.append(r?.stderr ?? "no result") } }
            }
        }
        defer { servers.withLock { s in s.values.forEach { $0.stop() } } }
        servers.withLock { s in
            for name in ["a", "b"] where s[name] == nil || s[name]?.process.isRunning != true { s[name] = try? sites[name]?.serve() }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(3) })")
        let converged = try eventually(90) { try t.converged(2 * each + 1) }
        #expect(
            converged,
            "chains: a \(String(describing: try? t.a.tally(t.id)["chain_length"])), b \(String(describing: try? t.b.tally(t.id)["chain_length"]))")
        let ta = try t.a.tally(t.id), tb = try t.b.tally(t.id)
        #expect(ta["balance"] as? Int == 300_000 + each * 1000 - each * 500)
        #expect(ta["balance"] as? Int == tb["balance"] as? Int)
        // Each user's own view: exact opposites.
        let netA = try json(try t.a.cli(["user", "show", "alice", "--json"]).stdout)["net"] as? Int
        let netB = try json(try t.b.cli(["user", "show", "bob", "--json"]).stdout)["net"] as? Int
        #expect(netA != nil && netA == netB.map { -$0 })
        for site in [t.a, t.b] {
            let v = try site.cli(["tally", "verify", t.id, "--json"])
            #expect(v.code == 0, "\(v.stdout)")
            #expect(try json(v.stdout)["ok"] as? Bool == true)
            let chits =
                try json(try site.cli(["chit", "list", "--tally", t.id, "--limit", "5000", "--json"]).stdout)["chits"] as? [[String: Any]] ?? []
            #expect(chits.count == 2 * each + 1, "no chit lost or doubled")
            #expect(Set(chits.compactMap { $0["id"] as? String }).count == 2 * each + 1)
            #expect(chits.allSatisfy { $0["state"] as? String == "chained" })
        }
    }
}

@Suite(.serialized) struct InvoiceTests {
    @Test func anInvoiceAcceptedAndOneRefused() throws {
        let t = try ChitTests.OpenTally()
        let sa = try t.a.serve(), sb = try t.b.serve()
        defer { sa.stop(); sb.stop() }
        // Bob (stock) asks alice (foil) for 12.5 and then for 99.
        let asked = try json(try t.b.cli(["invoice", "bob", t.id, "12.5", "--memo", "lunch", "--ref", "{\"order\":7}", "--json"]).stdout)
        let first = try #require(asked["id"] as? String)
        let second = try #require(try json(try t.b.cli(["invoice", "bob", t.id, "99", "--json"]).stdout)["id"] as? String)
        func invoices(_ site: E2ESite) throws -> [[String: Any]] {
            try json(try site.cli(["chit", "list", "--json"]).stdout)["invoices"] as? [[String: Any]] ?? []
        }
        #expect(try eventually { try invoices(t.a).count == 2 }, "both invoices wait on alice's site")
        #expect(try invoices(t.a).allSatisfy { $0["direction"] as? String == "in" && $0["state"] as? String == "open" })
        let paid = try t.a.cli(["chit", "accept", String(first.prefix(8)), "--json"])
        #expect(paid.code == 0, "\(paid.stderr)")
        #expect(try t.a.cli(["chit", "refuse", second, "--reason", "too much"]).code == 0)
        #expect(
            try eventually {
                let bs = try invoices(t.b)
                return bs.first { $0["id"] as? String == first }?["state"] as? String == "paid"
                    && bs.first { $0["id"] as? String == second }?["state"] as? String == "refused"
            })
        #expect(try invoices(t.b).first { $0["id"] as? String == second }?["note"] as? String == "too much")
        #expect(try eventually { try t.converged(1) })
        #expect(try t.b.tally(t.id)["balance"] as? Int == 12_500)
        expectOneLineError(try t.a.cli(["chit", "accept", second]), containing: "not one to pay")
        expectOneLineError(try t.b.cli(["chit", "accept", first]), containing: "not one to pay")
    }
}

@Suite(.serialized) struct BackupWhilePayingTests {
    /// A backup taken while payments flow restores to a file that passes the
    /// integrity check and `tally verify` for every tally.
    @Test func backupDuringPaymentsRestoresToAVerifiedSite() throws {
        let t = try ChitTests.OpenTally()
        let sa = try t.a.serve(), sb = try t.b.serve()
        defer { sa.stop(); sb.stop() }
        #expect(try t.a.cli(["pay", "alice", t.id, "100"]).code == 0)
        // Bob (granted no credit) pays back from this, so both must have it first.
        #expect(try eventually(30) { try t.converged(1) })
        let (siteA, siteB, id) = (t.a, t.b, t.id)
        let backups = [t.dir.file("during-1.db"), t.dir.file("during-2.db.gz")]
        // Each backup starts once that many payments are done: during the payments, whatever their speed.
        let paid = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 3) { worker in
            switch worker {
            case 0:
                for _ in 0..<60 {
                    if let r = try? siteA.cli(["pay", "alice", id, "1"]) {
                        r.code == 0 ? paid.withLock { $0 += 1 } : print("pay failed: \(r.stderr)")
                    }
                }
            case 1:
                for _ in 0..<60 {
                    if let r = try? siteB.cli(["pay", "bob", id, "0.5"]) {
                        r.code == 0 ? paid.withLock { $0 += 1 } : print("pay failed: \(r.stderr)")
                    }
                }
            default:
                _ = waitUntil(timeout: 60) { paid.withLock { $0 } >= 10 }
                _ = try? siteA.cli(["backup", backups[0]])
                _ = waitUntil(timeout: 60) { paid.withLock { $0 } >= 40 }
                _ = try? siteB.cli(["backup", backups[1], "--gzip"])
            }
        }
        for (n, backup) in backups.enumerated() {
            #expect(FileManager.default.fileExists(atPath: backup), "backup \(n) was made")
            let restored = t.dir.file("restored-\(n).db")
            let r = try chipsite(["restore", backup, "--db", restored])
            #expect(r.code == 0, "\(r.stderr)")
            let v = try chipsite(["tally", "verify", t.id, "--db", restored, "--json"])
            let ok = try json(v.stdout)["ok"] as? Bool
            #expect(v.code == 0 && ok == true, "\(v.stdout)")
            let integrity = try run(
                "/usr/bin/env",
                ["python3", "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])", restored]
            )
            #expect(integrity.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "ok")
        }
        let converged = try eventually(60) { try t.converged(121) }
        #expect(
            converged, "a: \(String(describing: try? t.a.tally(t.id)["chain_length"])) b: \(String(describing: try? t.b.tally(t.id)["chain_length"]))"
        )
    }
}
