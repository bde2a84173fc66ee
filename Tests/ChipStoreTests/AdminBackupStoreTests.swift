import ChipModel
import Foundation
import GRDB
import Synchronization
import Testing
import TestSupport
import ChipProtocol
@testable import ChipStore

@Suite struct AdminBackupStoreTests {
    @Test func backupDuringWritesIsConsistentAndRestores() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("site.db"), address: address, passphrase: nil)
        try store.addUser(cuid: try CUID("alice"), name: "Alice", email: nil, sealingKey: nil)
        // A second connection keeps writing while the backup runs.
        let writer = try SiteStore.open(at: dir.file("site.db"))
        let done = StoreShared(false), committed = StoreShared(0)
        let thread = Thread {
            var i = 0
            while !done.get() {
                if (try? writer.addUser(cuid: try CUID("w\(i)"), name: "W", email: nil, sealingKey: nil)) != nil {
                    committed.set(committed.get() + 1)
                }
                i += 1
            }
        }
        thread.start()
        // The backup starts once the writer is writing (it has committed).
        #expect(waitUntil(timeout: 10) { committed.get() >= 1 }, "the writer commits")
        try store.backup(to: dir.file("b.db"))
        done.set(true)
        #expect(throws: ModelError.self) { try store.backup(to: dir.file("b.db")) }
        #expect(try SiteBackup.integrityProblem(dir.file("b.db")) == nil)
        let status = try SiteBackup.restore(from: dir.file("b.db"), to: dir.file("r.db"))
        #expect(status.agent == (try store.agent()))
        #expect(status.path == dir.file("r.db"))
        let restored = try SiteStore.open(at: dir.file("r.db"))
        #expect(try restored.user(try CUID("alice")).certificate.name == "Alice")
        let mode = try restored.database.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        #expect(throws: ModelError.self) { try SiteBackup.restore(from: dir.file("b.db"), to: dir.file("r.db")) }
    }
}

/// A value shared between threads in tests.
final class StoreShared<T: Sendable>: Sendable {
    let value: Mutex<T>
    init(_ v: T) { value = Mutex(v) }
    func get() -> T { value.withLock { $0 } }
    func set(_ v: T) { value.withLock { $0 = v } }
}
