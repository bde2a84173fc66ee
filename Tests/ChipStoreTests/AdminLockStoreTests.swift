import ChipModel
import Foundation
import GRDB
import Testing
import TestSupport
import ChipProtocol
@testable import ChipStore

@Suite struct AdminLockStoreTests {
    @Test func lockdownIsTheSiteLockdownSettingAndFailsClosed() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
        #expect(try !store.isLockedDown())
        try store.setLockdown(true)
        #expect(try store.isLockedDown())
        #expect(try store.configValue(.siteLockdown) == "on")
        // Another process (the engine) sees it at once.
        #expect(try SiteStore.open(at: dir.file("site.db")).isLockedDown())
        try store.setLockdown(false)
        #expect(try !store.isLockedDown())
        // A damaged value counts as locked down.
        try store.database.write { db in try db.execute(sql: "UPDATE config SET value = 'garbage' WHERE key = 'site.lockdown'") }
        #expect(try store.isLockedDown())
    }

    @Test func usersLockAndUnlock() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
        let alice = try CUID("alice"), bob = try CUID("bob")
        try store.addUser(cuid: alice, name: "Alice", email: nil, sealingKey: nil)
        try store.addUser(cuid: bob, name: "Bob", email: nil, sealingKey: nil)
        #expect(try !store.isUserLocked(alice))
        #expect(try store.setUserLocked(alice, true))
        #expect(try !store.setUserLocked(alice, true))
        #expect(try store.isUserLocked(alice) && !store.isUserLocked(bob))
        #expect(try store.lockedUsers() == ["alice"])
        #expect(try store.setUserLocked(alice, false))
        #expect(try !store.isUserLocked(alice))
        #expect(throws: StoreError.unknownUser("carol")) { try store.isUserLocked(try CUID("carol")) }
        #expect(throws: StoreError.unknownUser("carol")) { try store.setUserLocked(try CUID("carol"), true) }
    }

    @Test func theLockMigrationAppliesToAnOlderFile() throws {
        let dir = try TempDir()
        let path = dir.file("site.db")
        let store = try SiteStore.create(at: path, address: address, passphrase: nil)
        try store.addUser(cuid: try CUID("alice"), name: "Alice", email: nil, sealingKey: nil)
        // Make it look like a file from before the migration.
        try store.database.write { db in
            try db.execute(sql: "ALTER TABLE users DROP COLUMN locked")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = '2026-11-25 admin: user lock'")
        }
        try store.closeFile()
        let reopened = try SiteStore.open(at: path)
        #expect(try !reopened.isUserLocked(try CUID("alice")))
        #expect(try reopened.status().schemaVersion == Schema.currentVersion)
    }
}
