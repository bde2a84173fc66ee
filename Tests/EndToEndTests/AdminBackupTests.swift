import Foundation
import Synchronization
import Testing
import TestSupport

/// `chipsite serve` on a site, for admin tests: started on 127.0.0.1 port 0,
/// ready once its "chipsite: serving" line is out (bounded), stopped with SIGTERM.
/// A value shared between threads in tests.
final class AdminShared<T: Sendable>: Sendable {
    let value: Mutex<T>
    init(_ v: T) { value = Mutex(v) }
    func get() -> T { value.withLock { $0 } }
    func set(_ v: T) { value.withLock { $0 = v } }
}

final class AdminServe {
    let process = Process()
    private let output = AdminShared("")

    init(db: String, listen: String = "127.0.0.1:0", timeout: TimeInterval = 20) throws {
        process.executableURL = URL(fileURLWithPath: try chipsiteBinary())
        process.arguments = ["serve", "--db", db, "--listen", listen]
        process.environment = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let output = self.output
        out.fileHandleForReading.readabilityHandler = { h in
            let data = h.availableData
            if data.isEmpty { h.readabilityHandler = nil; return }
            output.value.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, process.isRunning {
            if output.get().contains("chipsite: serving ") { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        stop()
        throw RunError("serve did not print its ready line within \(timeout) s")
    }

    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// `PRAGMA integrity_check` through Python's sqlite3 (independent of chipsite).
func integrityCheck(_ db: String) throws -> String {
    let r = try run(
        "/usr/bin/env",
        [
            "python3", "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])",
            db
        ])
    return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

@Suite struct AdminBackupTests {
    @Test func backupWhileServeRunsAndWritesFlowRestoresToAnEqualSite() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        let serve = try AdminServe(db: db)
        defer { serve.stop() }

        // Writers keep committing while the backups are taken.
        let stopWriting = AdminShared(false), added = AdminShared(0)
        let writer = Thread {
            var i = 0
            while !stopWriting.get() {
                if (try? chipsite(["user", "add", "u\(i)", "--name", "User \(i)", "--db", db]))?.code == 0 { added.set(added.get() + 1) }
                i += 1
            }
        }
        writer.start()
        // The backups start once the writer is committing.
        #expect(waitUntil(timeout: 30) { added.get() >= 1 }, "the writer commits")
        let plain = dir.file("plain.backup")
        let packed = dir.file("packed.backup.gz")
        let b1 = try chipsite(["backup", plain, "--db", db])
        #expect(b1.code == 0, "\(b1.stderr)")
        let b2 = try chipsite(["backup", packed, "--gzip", "--db", db, "--json"])
        stopWriting.set(true)
        #expect(b2.code == 0, "\(b2.stderr)")
        #expect(try json(b2.stdout)["gzip"] as? Bool == true)
        var st = stat()
        #expect(stat(plain, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(stat(packed, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(fileBytes(packed)?.prefix(2) == Data([0x1F, 0x8B]))
        #expect(try integrityCheck(plain) == "ok")
        // Real gzip: the system gunzip reads it.
        #expect(try run("/usr/bin/env", ["gzip", "-t", packed]).code == 0)

        for (name, backup) in [("r1.db", plain), ("r2.db", packed)] {
            let target = dir.file(name)
            let r = try chipsite(["restore", backup, "--db", target])
            #expect(r.code == 0, "\(r.stderr)")
            #expect(try integrityCheck(target) == "ok")
            #expect(stat(target, &st) == 0 && st.st_mode & 0o777 == 0o600)
            let restored = try json(try chipsite(["status", "--db", target, "--json"]).stdout)
            let live = try json(try chipsite(["status", "--db", db, "--json"]).stdout)
            #expect(restored["agent"] as? String == live["agent"] as? String)
            #expect(restored["host"] as? String == live["host"] as? String)
            #expect((restored["users"] as? Int ?? 0) >= 1)
            #expect(try chipsite(["user", "show", "alice", "--db", target]).code == 0)
            // Nothing but the site file is left beside it.
            let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            #expect(!names.contains { $0.contains(".partial-") }, "\(names)")
        }
        #expect(serve.stop() == 0)
        // Once stopped, the restored copy matches the live site's contents for what the backup held.
        #expect(try integrityCheck(db) == "ok")
    }

    @Test func aStoppedSiteIsOneFileThatCanBeCopied() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        let serve = try ServeProcess(db: db)
        // Written while serve holds the file open: it lands in site.db-wal first.
        #expect(try chipsite(["user", "add", "alice", "--name", "Alice", "--db", db]).code == 0)
        #expect(serve.stop() == 0)
        #expect(
            !FileManager.default.fileExists(atPath: db + "-wal") || (fileBytes(db + "-wal")?.isEmpty ?? true),
            "serve checkpoints when it stops")
        let copy = dir.file("copy.db")
        try FileManager.default.copyItem(atPath: db, toPath: copy)
        let status = try json(try chipsite(["status", "--db", copy, "--json"]).stdout)
        #expect(status["users"] as? Int == 1, "the copy of the one file holds the user")
    }

    @Test func refusalsWriteNothing() throws {
        let dir = try TempDir()
        let db = try adminSite(dir)
        let existing = dir.file("existing")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: existing))
        expectOneLineError(try chipsite(["backup", existing, "--db", db]), containing: "refusing to overwrite")
        expectOneLineError(try chipsite(["backup", existing, "--gzip", "--db", db]), containing: "refusing to overwrite")
        #expect(fileBytes(existing) == Data("keep me".utf8))
        // A side file in the way is refused and left alone (it is not ours).
        let inTheWay = dir.file("b.gz") + "-journal"
        try Data("not ours".utf8).write(to: URL(fileURLWithPath: inTheWay))
        expectOneLineError(try chipsite(["backup", dir.file("b.gz"), "--gzip", "--db", db]), containing: "in the way")
        expectOneLineError(try chipsite(["backup", dir.file("b.gz"), "--db", db]), containing: "in the way")
        #expect(fileBytes(inTheWay) == Data("not ours".utf8))
        #expect(!FileManager.default.fileExists(atPath: dir.file("b.gz")))
        try FileManager.default.removeItem(atPath: inTheWay)
        expectOneLineError(try chipsite(["backup", dir.file("nodir/b"), "--db", db]), containing: "cannot create")
        expectOneLineError(try chipsite(["backup", dir.file("b"), "--db", dir.file("none.db")]), containing: "chipsite init")
        #expect(!FileManager.default.fileExists(atPath: dir.file("b")))

        let backup = dir.file("site.backup")
        #expect(try chipsite(["backup", backup, "--db", db]).code == 0)
        // Restore never overwrites, not even another site.
        let other = try adminSite(dir, name: "other.db")
        let otherBytes = fileBytes(other)
        expectOneLineError(try chipsite(["restore", backup, "--db", other]), containing: "refusing to overwrite")
        #expect(fileBytes(other) == otherBytes)
        expectOneLineError(try chipsite(["restore", dir.file("missing"), "--db", dir.file("r.db")]), containing: "no backup")
        expectOneLineError(try chipsite(["restore", existing, "--db", dir.file("r.db")]), containing: "not a chipsite backup")

        // A foreign SQLite file, a damaged backup, a truncated and a corrupt gzip.
        let foreign = dir.file("foreign.sqlite")
        _ = try run(
            "/usr/bin/env",
            ["python3", "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table t(x)'); c.commit()", foreign])
        expectOneLineError(try chipsite(["restore", foreign, "--db", dir.file("r.db")]), containing: "not a chipsite site")
        var damaged = try #require(fileBytes(backup))
        for i in stride(from: 4096 + 100, to: min(damaged.count, 4096 * 6), by: 7) { damaged[i] ^= 0x5A }
        let damagedPath = dir.file("damaged.backup")
        try damaged.write(to: URL(fileURLWithPath: damagedPath))
        let d = try chipsite(["restore", damagedPath, "--db", dir.file("r.db")])
        expectOneLineError(d, containing: "backup")
        let packed = dir.file("site.backup.gz")
        #expect(try chipsite(["backup", packed, "--gzip", "--db", db]).code == 0)
        let gz = try #require(fileBytes(packed))
        try gz.prefix(gz.count / 2).write(to: URL(fileURLWithPath: dir.file("trunc.gz")))
        expectOneLineError(try chipsite(["restore", dir.file("trunc.gz"), "--db", dir.file("r.db")]), containing: "truncated")
        var bad = gz
        for i in stride(from: 20, to: bad.count - 8, by: 5) { bad[i] ^= 0xFF }
        try bad.write(to: URL(fileURLWithPath: dir.file("bad.gz")))
        expectOneLineError(try chipsite(["restore", dir.file("bad.gz"), "--db", dir.file("r.db")]), containing: "gzip")
        try (gz + Data("junk".utf8)).write(to: URL(fileURLWithPath: dir.file("trailing.gz")))
        expectOneLineError(try chipsite(["restore", dir.file("trailing.gz"), "--db", dir.file("r.db")]), containing: "after the gzip stream")

        #expect(!FileManager.default.fileExists(atPath: dir.file("r.db")))
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(!names.contains { $0.hasPrefix(".") }, "\(names)")
    }
}
