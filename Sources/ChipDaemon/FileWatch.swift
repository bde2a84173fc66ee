import Foundation
#if canImport(Glibc)
    import Glibc
#endif

/// Watches the site file's directory with Linux inotify and calls
/// `changed` (on its own thread) after each burst of writes to the site
/// file or its `-wal`: the sign that some connection committed. The caller
/// checks `PRAGMA data_version` to tell another process's commit from its
/// own. The thread sleeps in `poll(2)` without a timeout between events, so
/// an idle site costs nothing. SQLite makes a commit visible (in the -shm
/// index, which inotify does not see) only after its last write to -wal and
/// the fsync, so after a burst that showed no change `changed` is asked
/// again after each of `settle` (until it reports a change, or a new burst).
final class SiteFileWatch: Sendable {
    /// The write end of the pipe that ends the thread.
    private let stopWrite: Int32

    /// Looks after a burst of events that showed no change: milliseconds
    /// after the burst (a commit published late, behind a slow fsync).
    static let settle: [Int32] = [20, 200, 1000, 5000]

    private init(stopWrite: Int32) { self.stopWrite = stopWrite }

    enum WatchError: Error, CustomStringConvertible {
        case unavailable(String)
        var description: String {
            switch self {
            case .unavailable(let why): return why
            }
        }
    }

    /// Starts watching. Throws when inotify cannot be had (no such system
    /// call, no watches left, a directory that cannot be watched).
    /// `changed` returns whether it found a change.
    static func start(siteFile path: String, changed: @escaping @Sendable () -> Bool) throws -> SiteFileWatch {
        #if os(Linux)
            // SQLite resolves symbolic links; its -wal is beside the real file.
            let real: String
            if let resolved = realpath(path, nil) {
                real = String(cString: resolved)
                free(resolved)
            } else {
                real = path
            }
            let slash = real.lastIndex(of: "/")
            let directory = slash.map { $0 == real.startIndex ? "/" : String(real[..<$0]) } ?? "."
            let base = slash.map { String(real[real.index(after: $0)...]) } ?? real
            let names: Set<[UInt8]> = [Array(base.utf8), Array((base + "-wal").utf8)]

            let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard fd >= 0 else { throw WatchError.unavailable("inotify_init1: \(String(cString: strerror(errno)))") }
            let mask = UInt32(IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO)
            guard inotify_add_watch(fd, directory, mask) >= 0 else {
                let why = String(cString: strerror(errno))
                close(fd)
                throw WatchError.unavailable("inotify_add_watch \(directory): \(why)")
            }
            var pipeFDs: [Int32] = [0, 0]
            guard pipe(&pipeFDs) == 0 else {
                close(fd)
                throw WatchError.unavailable("pipe: \(String(cString: strerror(errno)))")
            }
            for end in pipeFDs { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            let stopRead = pipeFDs[0]
            let thread = Thread { loop(inotify: fd, stop: stopRead, names: names, changed: changed) }
            thread.name = "chipsite-file-watch"
            thread.start()
            return SiteFileWatch(stopWrite: pipeFDs[1])
        #else
            throw WatchError.unavailable("inotify is Linux only")
        #endif
    }

    /// Ends the thread (it closes the inotify descriptor on its way out).
    func stop() {
        var byte: UInt8 = 1
        _ = write(stopWrite, &byte, 1)
        close(stopWrite)
    }

    #if os(Linux)
        private static func loop(inotify fd: Int32, stop: Int32, names: Set<[UInt8]>, changed: @Sendable () -> Bool) {
            defer {
                close(fd)
                close(stop)
            }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stop, events: Int16(POLLIN), revents: 0)]
            var buffer = [UInt8](repeating: 0, count: 16 * 1024)
            // The next look after the last burst (an index into `settle`), nil
            // when none is due; its timeout counts from the previous look.
            var look: Int?
            while true {
                let timeout = look.map { settle[$0] - ($0 > 0 ? settle[$0 - 1] : 0) } ?? -1
                let ready = poll(&fds, 2, timeout)
                if ready < 0 {
                    if errno == EINTR { continue }
                    return
                }
                if fds[1].revents != 0 { return }
                if ready == 0, let due = look {  // a later look after a burst
                    look = changed() || due + 1 == settle.count ? nil : due + 1
                    continue
                }
                guard fds[0].revents & Int16(POLLIN) != 0 else { return }
                var relevant = false
                // Everything queued now is one burst.
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if n <= 0 { break }
                    relevant = relevant || touches(buffer[0..<n], names: names)
                }
                if relevant { look = changed() ? nil : 0 }
            }
        }

        /// Whether events in `bytes` (struct inotify_event, one after another)
        /// name one of `names`, or the queue overflowed (then anything may have).
        static func touches(_ bytes: ArraySlice<UInt8>, names: Set<[UInt8]>) -> Bool {
            let header = MemoryLayout<inotify_event>.size  // wd, mask, cookie, len
            var offset = bytes.startIndex
            while offset + header <= bytes.endIndex {
                func u32(_ at: Int) -> UInt32 {  // host byte order, as the kernel writes it
                    bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at - bytes.startIndex, as: UInt32.self) }
                }
                let mask = u32(offset + 4)
                let length = Int(u32(offset + 12))
                if mask & UInt32(IN_Q_OVERFLOW) != 0 { return true }
                let nameStart = offset + header
                let nameEnd = min(nameStart + length, bytes.endIndex)
                let name = Array(bytes[nameStart..<nameEnd].prefix { $0 != 0 })
                if names.contains(name) { return true }
                offset = nameEnd
            }
            return false
        }
    #endif
}
