import ChipModel
import Foundation
import GRDB
import Testing
import TestSupport
import ChipProtocol
@testable import ChipStore

func bytes(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { Array($0) } }

let address = try! SiteAddress(host: "chips.example.org", port: 65430)  // test constant

@Suite struct SiteStoreTests {
    @Test func createThenOpenAndStatus() throws {
        let dir = try TempDir()
        let path = dir.file("site.db")
        let store = try SiteStore.create(at: path, address: address, passphrase: nil)
        let s = try SiteStore.open(at: path).status()
        #expect(s.agent == (try store.agent()))
        #expect(s.address == address)
        #expect(s.path == path)
        #expect(s.schemaVersion == Schema.currentVersion)
        #expect(!s.sealed)
        #expect(s.users == 0 && s.tickets == 0 && s.tallies == 0)
        #expect(try store.siteKey(sealingKey: nil).publicKey == s.agent.publicKey)
    }

    @Test func fileIsPrivateAndInWALMode() throws {
        let dir = try TempDir()
        let path = dir.file("site.db")
        let store = try SiteStore.create(at: path, address: address, passphrase: nil)
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        let (mode, sync, fk) = try store.database.read { db in
            (
                try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"),
                try Int.fetchOne(db, sql: "PRAGMA foreign_keys")
            )
        }
        #expect(mode == "wal")
        #expect(sync == 2)  // FULL
        #expect(fk == 1)
    }

    @Test func secondCreateIsRefusedAndLeavesTheFileByteIdentical() throws {
        let dir = try TempDir()
        let path = dir.file("site.db")
        _ = try SiteStore.create(at: path, address: address, passphrase: nil)
        let before = bytes(path)
        #expect(throws: StoreError.siteExists(path: path)) {
            try SiteStore.create(at: path, address: address, passphrase: nil)
        }
        #expect(bytes(path) == before)
    }

    @Test func nonSQLiteAndForeignSQLiteFilesAreRefusedUntouched() throws {
        let dir = try TempDir()
        let junk = dir.file("junk.db")
        let content = Array(String(repeating: "not a database\n", count: 200).utf8)
        #expect(FileManager.default.createFile(atPath: junk, contents: Data(content)))
        #expect(throws: StoreError.notSQLite(path: junk)) { try SiteStore.open(at: junk) }
        #expect(bytes(junk) == content)
        #expect(throws: StoreError.siteExists(path: junk)) { try SiteStore.create(at: junk, address: address, passphrase: nil) }
        #expect(bytes(junk) == content)

        let foreign = dir.file("foreign.db")
        do {
            let q = try DatabaseQueue(path: foreign)
            try q.write { try $0.execute(sql: "CREATE TABLE t(x); INSERT INTO t VALUES (1)") }
        }
        let foreignBytes = bytes(foreign)
        #expect(throws: StoreError.notASite(path: foreign)) { try SiteStore.open(at: foreign) }
        #expect(bytes(foreign) == foreignBytes)
        #expect(!FileManager.default.fileExists(atPath: foreign + "-wal"))

        let empty = dir.file("empty.db")
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        #expect(throws: StoreError.notASite(path: empty)) { try SiteStore.open(at: empty) }
        #expect(bytes(empty) == [])

        #expect(throws: StoreError.noSite(path: dir.file("missing.db"))) { try SiteStore.open(at: dir.file("missing.db")) }
        #expect(throws: StoreError.self) { try SiteStore.open(at: dir.path) }
        #expect(throws: StoreError.self) {
            try SiteStore.create(at: dir.file("no/such/dir/site.db"), address: address, passphrase: nil)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.file("no")))
    }

    @Test func sealedKeyRoundTripAndWrongPassphrase() throws {
        let dir = try TempDir()
        let path = dir.file("site.db")
        let pass = Array("hunter2 but longer".utf8)
        let store = try SiteStore.create(at: path, address: address, passphrase: pass, cost: .interactive)
        #expect(try store.isSealed())
        #expect(throws: StoreError.passphraseNeeded) { try store.siteKey(sealingKey: nil) }
        let kek = try #require(try store.sealingKey(passphrase: pass))
        #expect(try store.siteKey(sealingKey: kek).publicKey == (try store.agent()).publicKey)
        #expect(throws: StoreError.wrongPassphrase) { try store.sealingKey(passphrase: Array("wrong".utf8)) }
        // The raw seed is nowhere in the file in the clear.
        let raw = try store.database.read { db in try Data.fetchOne(db, sql: "SELECT secret FROM site_key") }
        #expect(raw?.count == 73)

        // Users on a sealed site get sealed keys and need the sealing key.
        #expect(throws: StoreError.passphraseNeeded) {
            try store.addUser(cuid: try CUID("alice"), name: "Alice", email: nil, sealingKey: nil)
        }
        let alice = try store.addUser(cuid: try CUID("alice"), name: "Alice", email: nil, sealingKey: kek)
        #expect(alice.sealed)
        #expect(try store.users().count == 1)
    }

    @Test func usersAddListShowAndRefusals() throws {
        let dir = try TempDir()
        let store = try SiteStore.create(at: dir.file("s.db"), address: address, passphrase: nil)
        let bob = try store.addUser(cuid: try CUID("bob"), name: "Bob", email: "bob@example.org", type: .organization, sealingKey: nil)
        _ = try store.addUser(cuid: try CUID("alice"), name: "Alice", email: nil, sealingKey: nil)
        #expect(try store.users().map(\.cuid.value) == ["alice", "bob"])
        let shown = try store.user(try CUID("bob"))
        #expect(shown == bob)
        #expect(shown.certificate.chad.agent == (try store.agent()))
        #expect(shown.certificate.chad.address == address)
        #expect(shown.certificate.type == .organization)
        #expect(!shown.sealed)
        #expect(throws: StoreError.userExists("bob")) {
            try store.addUser(cuid: try CUID("bob"), name: "Other", email: nil, sealingKey: nil)
        }
        #expect(throws: StoreError.unknownUser("carol")) { try store.user(try CUID("carol")) }
        #expect(throws: ModelError.self) { try store.addUser(cuid: try CUID("dan"), name: "Dan", email: "bad", sealingKey: nil) }
        #expect(try store.status().users == 2)
    }

    @Test func aLockedFileIsABusyErrorNotAHang() throws {
        let dir = try TempDir()
        let path = dir.file("s.db")
        let store = try SiteStore.create(at: path, address: address, passphrase: nil)
        let other = try DatabaseQueue(path: path)
        let started = Date()
        try other.inDatabase { db in
            try db.execute(sql: "BEGIN IMMEDIATE")
            #expect(throws: StoreError.busy(path: path)) {
                try store.addUser(cuid: try CUID("alice"), name: "Alice", email: nil, sealingKey: nil)
            }
            try db.execute(sql: "ROLLBACK")
        }
        #expect(Date().timeIntervalSince(started) < SiteStore.busyTimeout + 10)
        #expect(try store.users().isEmpty)
    }

    @Test func defaultLocation() {
        typealias L = SiteLocation
        #expect(L.resolve(explicit: "/x.db", environment: ["CHIPSITE_DB": "/y.db"], isRoot: true) == ("/x.db", false))
        #expect(L.resolve(explicit: nil, environment: ["CHIPSITE_DB": "/y.db"], isRoot: true) == ("/y.db", false))
        #expect(L.resolve(explicit: nil, environment: [:], isRoot: true) == ("/var/lib/chipsite/site.db", true))
        #expect(L.resolve(explicit: nil, environment: ["XDG_DATA_HOME": "/d", "HOME": "/h"], isRoot: false) == ("/d/chipsite/site.db", true))
        #expect(L.resolve(explicit: nil, environment: ["HOME": "/h"], isRoot: false) == ("/h/.local/share/chipsite/site.db", true))
        // No usable $HOME: the account's home directory, never a path relative to the working directory.
        #expect(
            L.resolve(explicit: nil, environment: [:], isRoot: false, accountHome: { "/home/u" }) == ("/home/u/.local/share/chipsite/site.db", true))
        #expect(L.resolve(explicit: nil, environment: ["HOME": "rel"], isRoot: false, accountHome: { "/home/u" }).path.hasPrefix("/home/u/"))
        #expect(L.resolve(explicit: nil, environment: [:], isRoot: false).path == "/.local/share/chipsite/site.db")
    }
}

/// serve opens the file with a pool of readers beside the writer; its
/// writer still commits with `synchronous = FULL`.
@Suite struct ConcurrentReadsTests {
    @Test func servesPoolKeepsEveryCommitDurableAndReadsBesideIt() throws {
        let dir = try TempDir()
        let path = dir.file("site.db")
        _ = try SiteStore.create(at: path, address: address, passphrase: nil)
        let store = try SiteStore.open(at: path, concurrentReads: true)
        #expect(store.database is DatabasePool)
        #expect(try store.database.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
        #expect(try store.database.read { db in try Int.fetchOne(db, sql: "PRAGMA query_only") } == 0)
        _ = try store.addUser(cuid: try CUID("alice"), name: "Alice", email: nil, sealingKey: nil)
        #expect(try store.users().map(\.cuid.value) == ["alice"])
        // The CLI's one connection: nothing but the queue.
        #expect(try SiteStore.open(at: path).database is DatabaseQueue)
    }
}
