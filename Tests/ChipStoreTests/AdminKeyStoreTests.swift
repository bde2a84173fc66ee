import ChipModel
import Foundation
import GRDB
import Testing
import TestSupport
import ChipProtocol
@testable import ChipStore

@Suite struct AdminKeyStoreTests {
    func secrets(_ store: SiteStore) throws -> [String: Data] {
        try store.database.read { db in
            var all = [String: Data]()
            all["site"] = try Data.fetchOne(db, sql: "SELECT secret FROM site_key")
            for row in try Row.fetchAll(db, sql: "SELECT cuid, secret FROM users") { all[row["cuid"]] = row["secret"] }
            all["seal"] = try Data.fetchOne(db, sql: "SELECT salt FROM seal")
            return all
        }
    }

    @Test func sealChangeAndUnsealEveryKeyTogether() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
        let agent = try store.agent()
        for c in ["alice", "bob"] { try store.addUser(cuid: try CUID(c), name: c, email: nil, sealingKey: nil) }
        let publicKeys = try store.users().map(\.certificate.publicKey)

        let first = try NewSeal(passphrase: Array("first".utf8), cost: .interactive)
        #expect(try store.reseal(current: nil, new: first) == 3)
        #expect(try store.isSealed())
        #expect(try store.users().allSatisfy(\.sealed))
        #expect(try store.siteKeyInfo().sealed)
        #expect(throws: StoreError.passphraseNeeded) { try store.siteKey(sealingKey: nil) }
        let k1 = try #require(try store.sealingKey(passphrase: Array("first".utf8)))
        #expect(try store.siteKey(sealingKey: k1).publicKey == agent.publicKey)
        #expect(try store.unopenableUserKeys(sealingKey: k1).isEmpty)
        #expect(throws: StoreError.passphraseNeeded) { try store.reseal(current: nil, new: nil) }

        let second = try NewSeal(passphrase: Array("second".utf8), cost: .interactive)
        let wrong = try SealingKey(passphrase: Array("wrong".utf8), salt: second.salt, cost: .interactive)
        let before = try secrets(store)
        #expect(throws: StoreError.wrongPassphrase) { try store.reseal(current: wrong, new: second) }
        #expect(try secrets(store) == before)

        try store.reseal(current: k1, new: second)
        #expect(throws: StoreError.wrongPassphrase) { try store.sealingKey(passphrase: Array("first".utf8)) }
        let k2 = try #require(try store.sealingKey(passphrase: Array("second".utf8)))
        #expect(try store.unopenableUserKeys(sealingKey: k2).isEmpty)

        try store.reseal(current: k2, new: nil)
        #expect(try !store.isSealed())
        #expect(try store.users().allSatisfy { !$0.sealed })
        #expect(try store.unopenableUserKeys(sealingKey: nil).isEmpty)
        #expect(try store.users().map(\.certificate.publicKey) == publicKeys)
        #expect(try store.agent() == agent)
    }

    /// One secret that cannot be opened stops the whole change: every key
    /// and the seal stay as they were (the transaction is all or nothing).
    @Test func aFailureHalfwayLeavesTheOldStateWhole() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: Array("pw".utf8), cost: .interactive)
        let kek = try #require(try store.sealingKey(passphrase: Array("pw".utf8)))
        for c in ["a1", "a2", "a3"] { try store.addUser(cuid: try CUID(c), name: c, email: nil, sealingKey: kek) }
        // Damage the last user's sealed key: the site key and a1, a2 would be re-sealed before it fails.
        try store.database.write { db in
            var s = try #require(try Data.fetchOne(db, sql: "SELECT secret FROM users WHERE cuid = 'a3'"))
            s[40] ^= 1
            try db.execute(sql: "UPDATE users SET secret = ? WHERE cuid = 'a3'", arguments: [s])
        }
        let before = try secrets(store)
        #expect(throws: StoreError.wrongPassphrase) {
            try store.reseal(current: kek, new: try NewSeal(passphrase: Array("new".utf8), cost: .interactive))
        }
        #expect(throws: StoreError.wrongPassphrase) { try store.reseal(current: kek, new: nil) }
        #expect(try secrets(store) == before)
        #expect(try store.sealingKey(passphrase: Array("pw".utf8)) != nil)
        #expect(try store.unopenableUserKeys(sealingKey: kek) == ["a3"])
    }

    @Test func newSiteKeyRefusedWithTalliesUnlessForcedAndReissuesCertificates() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
        try store.addUser(cuid: try CUID("alice"), name: "Alice", email: "a@example.org", sealingKey: nil)
        let old = try store.agent()
        let oldFingerprint = try store.siteKeyInfo().fingerprint
        #expect(oldFingerprint.count == 19 && oldFingerprint.split(separator: " ").count == 4)
        try store.database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO tallies (uuid, cuid, side, partner_agent, partner_cuid, partner_host, partner_port, state, core, created, updated)
                    VALUES (?, 'alice', 'stock', ?, 'bob', 'b.example', 65430, 'open', '{}', 'now', 'now')
                    """, arguments: [String(repeating: "1", count: 36), old.description])
        }
        #expect(throws: ModelError.self) { try store.replaceSiteKey(sealingKey: nil, force: false) }
        #expect(try store.agent() == old)
        let change = try store.replaceSiteKey(sealingKey: nil, force: true)
        #expect(change.old == old && change.new != old && change.tallies == 1 && change.certificatesReissued == 1)
        #expect(try store.agent() == change.new)
        #expect(try store.siteKey(sealingKey: nil).publicKey == change.new.publicKey)
        let cert = try store.user(try CUID("alice")).certificate
        #expect(cert.chad.agent == change.new && cert.email == "a@example.org" && cert.name == "Alice")
        #expect(try store.siteKeyInfo().fingerprint != oldFingerprint)
    }

    @Test func newSiteKeyOnASealedSiteStaysSealed() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: Array("pw".utf8), cost: .interactive)
        let kek = try #require(try store.sealingKey(passphrase: Array("pw".utf8)))
        #expect(throws: StoreError.passphraseNeeded) { try store.replaceSiteKey(sealingKey: nil, force: false) }
        let wrong = try SealingKey(passphrase: Array("no".utf8), salt: Array(repeating: 1, count: 16), cost: .interactive)
        #expect(throws: StoreError.wrongPassphrase) { try store.replaceSiteKey(sealingKey: wrong, force: false) }
        let change = try store.replaceSiteKey(sealingKey: kek, force: false)
        #expect(try store.siteKeyInfo().sealed)
        #expect(try store.siteKey(sealingKey: kek).publicKey == change.new.publicKey)
    }
}
