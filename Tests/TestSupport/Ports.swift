import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Ports handed out in this test process: never twice.
private let handedOut = Mutex(Set<Int>())

/// A free TCP port on 127.0.0.1 for a test's listener. It is taken below
/// Linux's ephemeral range (32768-60999), so that no outgoing connection
/// of this or another process can be given it between this call and the
/// listener's bind, and never twice in one process; bound and released to
/// check it is free. Falls back to a port the kernel picks.
public func freePort() -> Int {
    var rng = SystemRandomNumberGenerator()
    for _ in 0..<200 {
        let port = Int.random(in: 20_000..<32_768, using: &rng)
        let fresh = handedOut.withLock { ports in ports.insert(port).inserted }
        if fresh, canBind(port) { return port }
    }
    return bound(0)
}

private func canBind(_ port: Int) -> Bool { bound(port) == port }

/// Binds 127.0.0.1:`port` (0: any) and releases it; the port bound, or -1.
private func bound(_ port: Int) -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    guard ok == 0 else { return -1 }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}
