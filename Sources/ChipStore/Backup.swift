import ChipModel
import ChipProtocol
import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

/// Online backup and verified restore of a site file. A stopped site's file
/// can simply be copied; a running one (whose recent commits may still sit
/// in the `-wal` file) needs `backup`, which copies a consistent snapshot
/// through SQLite's online backup API while `serve` keeps working.
public enum SiteBackup {
    /// Files are copied in chunks of this size.
    static let chunkSize = 1 << 16
    static let sidecars = ["-wal", "-shm", "-journal"]

    /// Creates `path` for writing with mode 0600; refuses an existing file
    /// (or an existing `-wal`/`-shm` beside it). Returns the descriptor.
    public static func createNew(_ path: String) throws -> Int32 {
        for s in sidecars where FileManager.default.fileExists(atPath: path + s) {
            throw StoreError.cannotCreate(path: path, reason: "\(path + s) is in the way")
        }
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            if code == EEXIST { throw ModelError.invalid("\(path) already exists; refusing to overwrite it") }
            throw StoreError.cannotCreate(path: path, reason: String(cString: strerror(code)))
        }
        fchmod(fd, 0o600)
        return fd
    }

    /// Removes `path` and its SQLite side files (after a failure).
    public static func removeAll(_ path: String) {
        for s in [""] + sidecars { unlink(path + s) }
    }

    /// A fresh name beside `target` for work in progress: same directory, so
    /// the final step is a link on one file system.
    public static func temporaryPath(beside target: String) -> String {
        let dir = (target as NSString).deletingLastPathComponent
        let base = (target as NSString).lastPathComponent
        let name = ".\(base).partial-\(Hex.encode(Crypto.randomBytes(6)))"
        return dir.isEmpty ? name : dir + "/" + name
    }

    /// Refuses `path` if it, or an SQLite side file beside it, exists: the
    /// cheap check before any work; `publish` checks again atomically.
    public static func checkFree(_ path: String) throws {
        for s in [""] + sidecars where FileManager.default.fileExists(atPath: path + s) {
            if s.isEmpty { throw ModelError.invalid("\(path) already exists; refusing to overwrite it") }
            throw StoreError.cannotCreate(path: path, reason: "\(path + s) is in the way")
        }
    }

    /// Puts the finished file `temp` in place as `target` with link(2),
    /// which never replaces an existing file, then syncs the directory. A
    /// reader (or a crash) sees no file or the whole file, never a part.
    /// The caller removes `temp` afterwards.
    public static func publish(_ temp: String, as target: String) throws {
        for s in sidecars where FileManager.default.fileExists(atPath: target + s) {
            throw StoreError.cannotCreate(path: target, reason: "\(target + s) is in the way")
        }
        if link(temp, target) != 0 {
            let code = errno
            if code == EEXIST { throw ModelError.invalid("\(target) already exists; refusing to overwrite it") }
            // File systems without hard links (FAT, exFAT, some network and
            // FUSE mounts): check, then rename. Only a file created in the
            // instant between the two could be replaced.
            guard code == EPERM || code == ENOTSUP || code == EOPNOTSUPP || code == ENOSYS else {
                throw StoreError.cannotCreate(path: target, reason: String(cString: strerror(code)))
            }
            try checkFree(target)
            guard rename(temp, target) == 0 else {
                throw StoreError.cannotCreate(path: target, reason: String(cString: strerror(errno)))
            }
        }
        sync(target)
    }

    /// Writes `bytes` to the new file `path` (mode 0600) all at once:
    /// through a temporary file beside it and `publish`.
    public static func writeNew(_ path: String, _ bytes: [UInt8]) throws {
        try checkFree(path)
        let temp = temporaryPath(beside: path)
        defer { removeAll(temp) }
        let fd = try createNew(temp)
        do {
            defer { close(fd) }
            try bytes.withUnsafeBytes { try writeAll(fd, $0) }
            guard fsync(fd) == 0 else { throw StoreError.cannotCreate(path: path, reason: String(cString: strerror(errno))) }
        }
        try publish(temp, as: path)
    }

    /// Writes every byte of `bytes` to `fd`.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.database("write failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// fsync of a file and of the directory holding it, so a finished
    /// backup or restore survives a power cut.
    public static func sync(_ path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
        let dir = (path as NSString).deletingLastPathComponent
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Copies `source` into the new file `destination` (mode 0600).
    static func copy(_ source: String, toNew destination: String) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw StoreError.cannotOpen(path: source, reason: String(cString: strerror(errno))) }
        defer { close(input) }
        let output = try createNew(destination)
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.cannotOpen(path: source, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            try buffer.withUnsafeBytes { try writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        fsync(output)
    }

    /// `PRAGMA integrity_check` on a file, opened read-only: nil when it
    /// says "ok", else its first complaint.
    public static func integrityProblem(_ path: String) throws -> String? {
        var c = Configuration()
        c.readonly = true
        c.label = "check"
        do {
            let queue = try DatabaseQueue(path: path, configuration: c)
            defer { try? queue.close() }
            let lines = try queue.read { db in try String.fetchAll(cached: db, sql: "PRAGMA integrity_check") }
            return lines == ["ok"] ? nil : (lines.first ?? "no answer")
        } catch {
            throw StoreError.from(error, path: path)
        }
    }

    /// Restores the plain (uncompressed) SQLite backup `backup` to the new
    /// site file `target`: copies it to a temporary file beside the target,
    /// runs `PRAGMA integrity_check`, opens it as a chipsite site (migrating
    /// an older one), and only then links it into place. Refuses an existing
    /// target; on any failure nothing is left behind.
    public static func restore(from backup: String, to target: String) throws -> SiteStatus {
        if FileManager.default.fileExists(atPath: target) {
            throw ModelError.invalid("\(target) already exists; refusing to overwrite it (restore to a new path)")
        }
        let temp = temporaryPath(beside: target)
        defer { removeAll(temp) }
        try copy(backup, toNew: temp)
        var status: SiteStatus
        do {
            if let problem = try integrityProblem(temp) {
                throw ModelError.invalid("the backup fails its integrity check: \(Printable.clip(problem))")
            }
            let store = try SiteStore.open(at: temp)
            status = try store.status()
            _ = try store.siteKeyInfo()
            try store.closeFile()
        } catch StoreError.notASite {
            throw ModelError.invalid("\(backup) is an SQLite database but not a chipsite site backup")
        } catch StoreError.notSQLite {
            throw ModelError.invalid("\(backup) is not a chipsite backup (neither SQLite nor gzip)")
        } catch StoreError.damaged(let why) {
            throw ModelError.invalid("the backup is damaged: \(why)")
        }
        // A site runs in WAL mode; the backup was a standalone rollback-journal file.
        do {
            let queue = try DatabaseQueue(path: temp)
            try queue.writeWithoutTransaction { db in try db.execute(cached: "PRAGMA journal_mode = WAL") }
            try queue.close()
        } catch {
            throw StoreError.from(error, path: temp)
        }
        for s in sidecars where FileManager.default.fileExists(atPath: temp + s) {
            throw StoreError.database("the restored file left \(s) behind")
        }
        // A target that appeared meanwhile is refused, not overwritten.
        try SiteBackup.publish(temp, as: target)
        status.path = target
        return status
    }
}

extension SiteStore {
    /// Writes a consistent snapshot of the site to the new file `path`
    /// (mode 0600; an existing file is refused) with SQLite's online backup
    /// API, in one step, so the copy is one transaction's view even while
    /// `serve` writes. The copy is made beside `path` under a temporary
    /// name, checked with `PRAGMA integrity_check`, and only then linked
    /// into place: `path` never holds a partial backup.
    public func backup(to path: String) throws {
        try SiteBackup.checkFree(path)
        let temp = SiteBackup.temporaryPath(beside: path)
        defer { SiteBackup.removeAll(temp) }
        try snapshot(to: temp)
        try SiteBackup.publish(temp, as: path)
    }

    /// The online backup itself, into the new file `path` (left for the
    /// caller to remove on failure).
    public func snapshot(to path: String) throws {
        let fd = try SiteBackup.createNew(path)
        close(fd)
        do {
            var c = Configuration()
            c.label = "backup"
            let destination = try DatabaseQueue(path: path, configuration: c)
            try database.backup(to: destination)
            // The copy is a standalone file: no WAL beside it.
            try destination.writeWithoutTransaction { db in try db.execute(cached: "PRAGMA journal_mode = DELETE") }
            try destination.close()
            if let problem = try SiteBackup.integrityProblem(path) {
                throw StoreError.damaged("the backup copy fails its integrity check: \(Printable.clip(problem))")
            }
            SiteBackup.sync(path)
        } catch {
            throw StoreError.from(error, path: path)
        }
    }
}
