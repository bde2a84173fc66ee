import BenchSupport
import ChipChannel
import Foundation
import GRDB
import Noise

// MARK: Raw Noise over loopback TCP (the ping ceiling)

/// Two in-process Noise transports over a loopback TCP connection: the
/// device's side sends one `T` frame of the request's size, the echo side
/// decrypts it and answers one of the reply's size, which the device
/// decrypts. The same handshake (IK, BLAKE2b, the user port's prologue)
/// and framing as the user port; no site, no JSON, no NIO: blocking
/// sockets on two threads of their own.
final class RawNoiseEcho: @unchecked Sendable {
    private let fd: Int32
    private let transport: Transport
    private let request: [UInt8]

    /// Connects, runs the handshake; the echo thread answers until the connection closes.
    init(requestBytes: Int, replyBytes: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw BenchError("socket: \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, len) } }
        guard bound == 0, listen(listener, 1) == 0 else { close(listener); throw BenchError("bind/listen: \(errno)") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }

        let siteKey = KeyPair.generate(), deviceKey = KeyPair.generate()
        let reply = [UInt8](repeating: 0x20, count: replyBytes)
        let server = Thread {
            let conn = accept(listener, nil, nil)
            close(listener)
            guard conn >= 0 else { return }
            defer { close(conn) }
            noDelay(conn)
            // Bounded: the device's side closes when the bench is done; a stuck read ends with the 30 s receive timeout.
            receiveTimeout(conn, seconds: 30)
            do {
                let hs = try Handshake(
                    pattern: .IK, hash: .blake2b, initiator: false, prologue: UserChannelMachine.prologue, localStatic: siteKey)
                guard let m1 = readFrame(conn) else { return }
                _ = try hs.readMessage(m1.body)
                guard writeAll(conn, Frame(.A, try hs.writeMessage()).encoded) else { return }
                let t = try hs.finish()
                while let f = readFrame(conn) {
                    _ = try t.decrypt(f.body)
                    guard writeAll(conn, Frame(.T, try t.encrypt(reply)).encoded) else { return }
                }
            } catch {}
        }
        server.stackSize = 1 << 20
        server.start()

        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sock, $0, len) } }
        guard connected == 0 else { close(sock); throw BenchError("connect: \(errno)") }
        noDelay(sock)
        receiveTimeout(sock, seconds: 10)
        let hs = try Handshake(
            pattern: .IK, hash: .blake2b, initiator: true, prologue: UserChannelMachine.prologue, localStatic: deviceKey,
            remoteStatic: siteKey.publicKey)
        guard writeAll(sock, Frame(.I, try hs.writeMessage(Array(#"{"v":[1]}"#.utf8))).encoded), let m2 = readFrame(sock) else {
            close(sock)
            throw BenchError("the raw Noise handshake failed")
        }
        _ = try hs.readMessage(m2.body)
        transport = try hs.finish()
        fd = sock
        request = [UInt8](repeating: 0x20, count: requestBytes)
    }

    /// Round trips (seconds each), `count` of them or until `deadline`.
    func roundTrips(count: Int?, until deadline: Double) throws -> [Double] {
        var out = [Double]()
        while count.map({ out.count < $0 }) ?? (now() < deadline) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            guard writeAll(fd, Frame(.T, try transport.encrypt(request)).encoded), let f = readFrame(fd) else {
                throw BenchError("the raw Noise echo stopped")
            }
            _ = try transport.decrypt(f.body)
            out.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return out
    }

    /// Closes the device's side; the echo thread ends.
    func finish() { close(fd) }
}

private func noDelay(_ fd: Int32) {
    var one: Int32 = 1
    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
}

private func receiveTimeout(_ fd: Int32, seconds: Int) {
    var tv = timeval(tv_sec: seconds, tv_usec: 0)
    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var sent = 0
    while sent < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { return false }
        sent += n
    }
    return true
}

private func readExact(_ fd: Int32, _ count: Int) -> [UInt8]? {
    var out = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
        let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
        if n <= 0 { return nil }
        got += n
    }
    return out
}

/// One frame: 4-byte big-endian length, header, body.
private func readFrame(_ fd: Int32) -> Frame? {
    guard let l = readExact(fd, 4) else { return nil }
    let length = Int(l[0]) << 24 | Int(l[1]) << 16 | Int(l[2]) << 8 | Int(l[3])
    guard length >= 1, length <= FrameLimits.maxLength, let rest = readExact(fd, length), let header = FrameHeader(rawValue: rest[0]) else {
        return nil
    }
    return Frame(header, Array(rest[1...]))
}

// MARK: Raw SQLite commits (the payment ceiling)

/// Single-row INSERT + COMMIT per transaction into a WAL file with
/// `synchronous=FULL`, as the site file is opened (chit-bench's ceiling):
/// the most durable transactions a second this disk takes one at a time.
/// `count` commits, or as many as fit in `seconds`; commits per second.
func rawCommitCeiling(path: String, count: Int?, seconds: Double) throws -> (rate: Double, commits: Int) {
    var config = Configuration()
    config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    let q = try DatabaseQueue(path: path, configuration: config)
    try q.writeWithoutTransaction { db in
        try db.execute(sql: "PRAGMA journal_mode = WAL")
        try db.execute(sql: "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    }
    let payload = String(repeating: "x", count: 400)
    let start = now()
    let deadline = start + seconds
    var n = 0
    while count.map({ n < $0 }) ?? (now() < deadline) {
        try q.write { db in try db.execute(sql: "INSERT INTO t (payload) VALUES (?)", arguments: [payload]) }
        n += 1
    }
    return (Double(n) / (now() - start), n)
}
