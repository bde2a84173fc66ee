import ChipModel
import ChipProtocol
import Foundation
import GRDB
import Testing
import TestSupport
@testable import ChipDaemon
@testable import ChipStore

/// N sites in this process for lifts: each its own site file, key and
/// loopback port (written in its users' certificates, so partners dial
/// what the tallies say), one user per site named after it.
final class LiftNetwork: @unchecked Sendable {
    let dir: TempDir
    var sites: [String: TestSite] = [:]

    init(_ names: [String]) throws {
        dir = try TempDir()
        for name in names { sites[name] = try TestSite(dir: dir, name: name, port: freePort()) }
    }

    subscript(_ name: String) -> TestSite {
        guard let s = sites[name] else { fatalError("no site \(name) in the test network") }
        return s
    }

    func start() async throws {
        for (_, s) in sites.sorted(by: { $0.key < $1.key }) {
            let port = try await s.store.dbQueue.read { db in try SiteStore.address(db).port }
            try await s.start(port: port)
            await s.daemon?.engine.setLiftSettings(LiftEngineSettings(interval: 0, min: 1))
        }
    }

    func stop() async {
        for s in sites.values { await s.stop() }
    }

    /// An open tally between `stock`'s user and `foil`'s user, each granting
    /// `limit` milliCHIPs: signed by both users and stored on both sites.
    @discardableResult
    func openTally(stock: String, foil: String, limit: Int64 = 1_000_000) throws -> String {
        let s = self[stock], f = self[foil]
        let sc = try CUID(stock), fc = try CUID(foil)
        let sCert = try #require(try s.store.dbQueue.read { db in try SiteStore.userCert(db, sc) })
        let fCert = try #require(try f.store.dbQueue.read { db in try SiteStore.userCert(db, fc) })
        let now = Timestamp.format(millisecondsSince1970: wallClockMilliseconds())
        let core = try TallyCore(
            uuid: UUID().uuidString.lowercased(), date: now, memo: nil, stock: (cert: sCert, terms: ["limit": .integer(limit)]),
            foil: (cert: fCert, terms: ["limit": .integer(limit)]))
        let sign = TallySignatures(
            stock: core.sign(with: try s.store.userKey(sc, sealingKey: nil)), foil: core.sign(with: try f.store.userKey(fc, sealingKey: nil)),
            hash: core.hash)
        try s.store.dbQueue.write { db in
            try SiteStore.insertTally(
                db, core: core, sign: sign, cuid: sc, side: .stock, partner: core.foilCert.chad, state: .open, token: nil, now: now)
        }
        try f.store.dbQueue.write { db in
            try SiteStore.insertTally(
                db, core: core, sign: sign, cuid: fc, side: .foil, partner: core.stockCert.chad, state: .open, token: nil, now: now)
        }
        return core.uuid
    }

    /// `payer`'s user pays `units` on `tally` (the payer owes that much more).
    func pay(_ payer: String, tally: String, units: Int64) throws {
        let store = self[payer].store
        _ = try store.pay(tally: tally, units: units, memo: nil, ref: nil, key: { try store.userKey($0, sealingKey: nil) })
        self[payer].daemon?.poke()
    }

    /// The tally as `site` holds it.
    func tally(_ site: String, _ uuid: String) throws -> TallyRecord { try self[site].store.tally(uuid) }

    /// Both halves of `uuid` hold the same chain (length, head, balance).
    func agree(_ a: String, _ b: String, _ uuid: String) throws -> Bool {
        let x = try tally(a, uuid), y = try tally(b, uuid)
        return x.chainLength == y.chainLength && x.chainHead == y.chainHead && x.balance == y.balance
    }
}
