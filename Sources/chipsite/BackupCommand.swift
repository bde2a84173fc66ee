import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore
import ChipViews

#if canImport(Glibc)
    import Glibc
#endif
#if canImport(CZlib)
    import CZlib
#endif

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write a consistent snapshot of the site to a new file, safe while serve runs.",
        discussion: """
            Uses SQLite's online backup, so the copy is consistent even while `chipsite serve` \
            is writing. A stopped site's file can simply be copied; a running one needs \
            this command. The backup is a new file with mode 0600 (it holds the keys, sealed \
            or not); an existing file is never overwritten. With --gzip it is compressed \
            (gzip format: `gunzip` reads it). Restore with `chipsite restore`.
            """)

    @Argument(help: ArgumentHelp("The new backup file.", valueName: "file"))
    var file: String

    @Flag(help: "Compress the backup with gzip.")
    var gzip = false

    @OptionGroup var site: SiteOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let store = try site.open()
        try SiteBackup.checkFree(file)
        if gzip {
            guard Gzip.isAvailable else { throw CLIError("--gzip is not available: this chipsite was built without zlib") }
            // Snapshot and compressed copy both under temporary names beside
            // the target; only the finished .gz is linked into place.
            let snapshot = SiteBackup.temporaryPath(beside: file), compressed = SiteBackup.temporaryPath(beside: file)
            defer { SiteBackup.removeAll(snapshot); SiteBackup.removeAll(compressed) }
            try store.snapshot(to: snapshot)
            try Gzip.compress(snapshot, toNew: compressed)
            try SiteBackup.publish(compressed, as: file)
        } else {
            try store.backup(to: file)
        }
        let status = try store.status()
        if output.json {
            print(
                JSONValue.object([
                    "file": .string(file), "gzip": .bool(gzip), "agent": .string(status.agent.description),
                    "users": .integer(Int64(status.users)), "tallies": .integer(Int64(status.tallies))
                ]).prettyString)
        } else {
            print("Backed up \(status.path) to \(file)\(gzip ? " (gzip)" : "")")
        }
    }
}

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup to a new site file, verified before it is put in place.",
        discussion: """
            Reads a file written by `chipsite backup` (gzip or not, detected from its first \
            bytes), writes it to a temporary file beside the target, runs \
            `PRAGMA integrity_check` and opens it as a chipsite site, then moves it into \
            place. Never overwrites: --db must name a file that does not exist. Stop \
            `chipsite serve` and point it at the restored file to use it.
            """)

    @Argument(help: ArgumentHelp("The backup file.", valueName: "backup"))
    var backup: String

    @Option(name: .long, help: ArgumentHelp("Path of the new site file (must not exist).", valueName: "path"))
    var db: String

    @OptionGroup var output: OutputOptions

    func run() throws {
        guard pathExists(backup) else { throw CLIError("no backup at \(backup)") }
        if pathExists(db) { throw CLIError("\(db) already exists; refusing to overwrite it (restore to a new path)") }
        let status: SiteStatus
        if try Gzip.hasMagic(backup) {
            guard Gzip.isAvailable else { throw CLIError("\(backup) is gzip-compressed and this chipsite was built without zlib: gunzip it first") }
            let temp = SiteBackup.temporaryPath(beside: db) + ".unzipped"
            defer { SiteBackup.removeAll(temp) }
            try Gzip.decompress(backup, toNew: temp)
            status = try SiteBackup.restore(from: temp, to: db)
        } else {
            status = try SiteBackup.restore(from: backup, to: db)
        }
        if output.json {
            print(StatusView.json(status, lockdown: nil).prettyString)
        } else {
            print("Restored site \(status.agent) to \(status.path): integrity ok, \(status.users) users, \(status.tallies) tallies")
        }
    }
}

/// Whether anything (even a dangling link) is at `path`.
func pathExists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
}

/// gzip files (RFC 1952) through zlib, streamed in chunks.
enum Gzip {
    static let magic: [UInt8] = [0x1F, 0x8B]
    static let chunkSize = 1 << 16
    /// A restored site larger than this is refused (a gzip bomb would
    /// otherwise fill the disk).
    static let maxDecompressedBytes: Int64 = 64 << 30

    static func hasMagic(_ path: String) throws -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: magic.count)
        let n = head.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        return n == magic.count && head == magic
    }

    #if canImport(CZlib)
        static let isAvailable = true
        /// windowBits 15 (32 KiB) plus 16: write and expect a gzip header, not zlib's.
        static let gzipWindowBits: Int32 = 15 + 16
        static let memoryLevel: Int32 = 8

        static func compress(_ source: String, toNew destination: String) throws {
            let input = open(source, O_RDONLY | O_CLOEXEC)
            guard input >= 0 else { throw CLIError("cannot read \(source): \(String(cString: strerror(errno)))") }
            defer { close(input) }
            let output = try SiteBackup.createNew(destination)
            defer { close(output) }
            var stream = z_stream()
            guard
                deflateInit2_(
                    &stream, Z_BEST_COMPRESSION, Z_DEFLATED, gzipWindowBits, memoryLevel, Z_DEFAULT_STRATEGY,
                    ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
            else { throw CLIError("zlib could not start compressing") }
            defer { deflateEnd(&stream) }
            var inBuffer = [UInt8](repeating: 0, count: chunkSize)
            var outBuffer = [UInt8](repeating: 0, count: chunkSize)
            var finished = false
            while !finished {
                let n = inBuffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                guard n >= 0 else { throw CLIError("cannot read \(source): \(String(cString: strerror(errno)))") }
                let flush = n == 0 ? Z_FINISH : Z_NO_FLUSH
                try inBuffer.withUnsafeMutableBufferPointer { inPtr in
                    stream.next_in = inPtr.baseAddress
                    stream.avail_in = uInt(n)
                    repeat {
                        let (rc, produced) = outBuffer.withUnsafeMutableBufferPointer { outPtr -> (Int32, Int) in
                            stream.next_out = outPtr.baseAddress
                            stream.avail_out = uInt(outPtr.count)
                            let rc = deflate(&stream, flush)
                            return (rc, outPtr.count - Int(stream.avail_out))
                        }
                        guard rc != Z_STREAM_ERROR else { throw CLIError("zlib failed while compressing") }
                        try outBuffer.withUnsafeBytes { try SiteBackup.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
                        if rc == Z_STREAM_END { finished = true }
                    } while stream.avail_out == 0 && !finished
                }
            }
            fsync(output)
        }

        static func decompress(_ source: String, toNew destination: String) throws {
            let input = open(source, O_RDONLY | O_CLOEXEC)
            guard input >= 0 else { throw CLIError("cannot read \(source): \(String(cString: strerror(errno)))") }
            defer { close(input) }
            let output = try SiteBackup.createNew(destination)
            defer { close(output) }
            var stream = z_stream()
            guard inflateInit2_(&stream, gzipWindowBits, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw CLIError("zlib could not start decompressing")
            }
            defer { inflateEnd(&stream) }
            var inBuffer = [UInt8](repeating: 0, count: chunkSize)
            var outBuffer = [UInt8](repeating: 0, count: chunkSize)
            var total: Int64 = 0
            var ended = false
            while !ended {
                let n = inBuffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                guard n >= 0 else { throw CLIError("cannot read \(source): \(String(cString: strerror(errno)))") }
                guard n > 0 else { throw CLIError("\(source) is a truncated gzip file") }
                try inBuffer.withUnsafeMutableBufferPointer { inPtr in
                    stream.next_in = inPtr.baseAddress
                    stream.avail_in = uInt(n)
                    repeat {
                        let (rc, produced) = outBuffer.withUnsafeMutableBufferPointer { outPtr -> (Int32, Int) in
                            stream.next_out = outPtr.baseAddress
                            stream.avail_out = uInt(outPtr.count)
                            let rc = inflate(&stream, Z_NO_FLUSH)
                            return (rc, outPtr.count - Int(stream.avail_out))
                        }
                        guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                            throw CLIError("\(source) is not a valid gzip file (zlib error \(rc))")
                        }
                        total += Int64(produced)
                        guard total <= maxDecompressedBytes else {
                            throw CLIError("\(source) decompresses to more than \(maxDecompressedBytes >> 30) GiB; refusing")
                        }
                        try outBuffer.withUnsafeBytes { try SiteBackup.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
                        if rc == Z_STREAM_END { ended = true }
                        if rc == Z_BUF_ERROR { break }
                    } while stream.avail_out == 0 && !ended
                    if ended, stream.avail_in > 0 { throw CLIError("\(source) has data after the gzip stream; refusing it") }
                }
            }
            var extra: UInt8 = 0
            if read(input, &extra, 1) > 0 { throw CLIError("\(source) has data after the gzip stream; refusing it") }
            fsync(output)
        }
    #else
        static let isAvailable = false
        static func compress(_ source: String, toNew destination: String) throws {
            throw CLIError("--gzip is not available: this chipsite was built without zlib")
        }
        static func decompress(_ source: String, toNew destination: String) throws {
            throw CLIError("gzip backups cannot be read: this chipsite was built without zlib")
        }
    #endif
}
