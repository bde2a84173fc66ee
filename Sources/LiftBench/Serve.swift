import BenchSupport
import ChipDaemon
import ChipModel
import ChipProtocol
import ChipStore
import Dispatch
import Foundation
import Synchronization

/// One site of a bench network on 127.0.0.1: its file, one user named
/// after it, and (once started) its `chipsite serve` child. The bench reads
/// and writes the site file through a connection of its own, as the CLI does.
/// Unchecked Sendable: after setup, each bench thread uses its own sites only
/// (SiteStore serializes its own connection).
final class ServeSite: @unchecked Sendable {
    let name: String
    let path: String
    let port: Int
    let store: SiteStore
    let user: CUID
    let agent: AgentID
    var serve: ServeChild?

    /// A new site file (lift.interval 0: no automatic circular passes).
    init(dir: TempDir, name: String, extraConfig: [(ConfigKey, String)] = []) throws {
        self.name = name
        path = dir.file("\(name).db")
        port = freePort()
        store = try SiteStore.create(at: path, address: try SiteAddress(host: "127.0.0.1", port: port), passphrase: nil)
        user = try CUID(name)
        try store.addUser(cuid: user, name: name.capitalized, email: nil, sealingKey: nil)
        agent = try store.agent()
        try store.setConfigValue(.liftInterval, "0")
        try store.setConfigValue(.peerHandshakeRate, "100000")
        try store.setConfigValue(.peerHandshakeBurst, "100000")
        for (k, v) in extraConfig { try store.setConfigValue(k, v) }
    }

    func start(binary: String, cleanup: Cleanup) throws {
        let s = try ServeChild(binary: binary, db: path, port: port, logVariable: "LIFT_BENCH_SERVE_LOG")
        cleanup.track(pid: s.pid)
        guard s.agent == agent.description else { throw BenchError("serve on \(name) reports agent \(s.agent), the file holds \(agent)") }
        serve = s
    }

    func stop(cleanup: Cleanup) -> Int32 {
        guard let s = serve else { return 0 }
        let status = s.stop()
        cleanup.untrack(pid: s.pid)
        serve = nil
        return status
    }

    /// Wakes this site's serve, as the CLI does after writing.
    func poke() { SiteDaemon.pokeRunning(siteFile: path) }

    var chad: CHAD { get throws { CHAD(cuid: user, agent: agent, address: try SiteAddress(host: "127.0.0.1", port: port)) } }

    /// `self`'s user pays `units` on `tally` through the site file and pokes serve, as `chipsite pay` does.
    func pay(_ tally: String, units: Int64) throws {
        let key = try store.userKey(user, sealingKey: nil)
        _ = try store.pay(tally: tally, units: units, memo: nil, ref: nil) { _ in key }
        poke()
    }

    func chainLength(_ tally: String) -> Int64 { (try? store.chainHead(of: tally).length) ?? -1 }
}

/// Opens a tally the real way (ticket, request, offer, accept) between
/// `foil`'s user (who pays, and owes) and `stock`'s user, who grants
/// `limit`; returns its uuid once both halves are open.
func openTally(foil: ServeSite, stock: ServeSite, limit: Int64 = Amount.maxMilli, timeout: Double = 60) throws -> String {
    let info = try stock.store.issueTicket(
        cuid: stock.user, expiresAt: Int64(Date().timeIntervalSince1970 * 1000) + 600_000, reuse: false, bound: nil,
        terms: ["side": "stock", "limit": .integer(limit)])
    let ticket = try TallyTicket(token: info.token, expires: info.expires, chad: stock.chad)
    _ = try foil.store.requestTally(cuid: foil.user, ticket: ticket, accept: true)
    foil.poke()
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if let t = try stock.store.tallies().first(where: { $0.partner.agent == foil.agent && $0.state == .open }),
            (try? foil.store.tally(t.uuid))?.state == .open
        {
            return t.uuid
        }
        Thread.sleep(forTimeInterval: 0.01)
    }
    throw BenchError("the tally \(foil.name) → \(stock.name) did not open within \(Int(timeout)) s")
}

/// Both halves of `tally` hold the same chain.
func agree(_ a: ServeSite, _ b: ServeSite, _ tally: String) -> Bool {
    guard let x = try? a.store.chainHead(of: tally), let y = try? b.store.chainHead(of: tally) else { return false }
    return x.length == y.length && x.head == y.head
}

/// Waits (bounded) until `condition` holds, checking every `every` seconds.
@discardableResult
func waitFor(_ seconds: Double, every: Double = 0.005, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        Thread.sleep(forTimeInterval: every)
    }
    return try condition()
}

func now() -> Double { Date().timeIntervalSince1970 }

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}
