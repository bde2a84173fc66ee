import ChipModel
import Foundation
import Testing
import TestSupport
import ChipProtocol
@testable import ChipStore

@Suite struct AdminConfigStoreTests {
    @Test func everyKeyHasAValidDefaultOrIsSetAtCreation() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
        for entry in try store.configEntries() {
            #expect(entry.effective != nil, "\(entry.key.name) has no value")
            if let d = entry.key.defaultValue { #expect(throws: Never.self) { try entry.key.validate(d) } }
            #expect(entry.isValid)
            #expect(!entry.key.range.isEmpty)
        }
        #expect(Set(ConfigKey.all.map(\.name)).count == ConfigKey.all.count)
    }

    @Test func storedValuesOutsideTheRangeAreReportedInvalid() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
        try store.database.write { db in
            try db.execute(sql: "INSERT INTO config (key, value) VALUES ('peer.idle_timeout', '-5')")
        }
        let entry = try #require(try store.configEntries().first { $0.key == .peerIdleTimeout })
        #expect(!entry.isValid && entry.stored == "-5")
        #expect(throws: ModelError.self) { try store.setSetting(.peerIdleTimeout, "1e9") }
        // Consumers (serve's limits, ticket defaults) never see the bad value.
        #expect(throws: StoreError.self) { try store.configValue(.peerIdleTimeout) }
        do {
            _ = try store.configValue(.peerIdleTimeout)
        } catch {
            #expect("\(error)".contains("config unset peer.idle_timeout"))
        }
    }

    @Test func aHugeStoredNumberIsRefusedNotTrapped() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
        try store.database.write { db in
            try db.execute(sql: "INSERT INTO config (key, value) VALUES ('peer.max_frame', '1e300'), ('peer.max_connections', 'nan')")
        }
        #expect(throws: StoreError.badSetting(key: "peer.max_frame", reason: "peer.max_frame must be a number from 17.0 to 65536.0")) {
            try store.configValue(.peerMaxFrame)
        }
        #expect(throws: StoreError.self) { try store.configValue(.peerMaxConnections) }
    }
}
