import ChipChannel
import ChipModel
import Glibc
import Noise

/// Why a load-generator connection failed.
enum WireError: Error, CustomStringConvertible {
    case system(String, Int32)
    case closed
    case frame(FrameError)
    case channel(ChannelError)
    case unexpected(String)

    var description: String {
        switch self {
        case .system(let call, let code): return "\(call): \(String(cString: strerror(code)))"
        case .closed: return "the server closed the connection"
        case .frame(let e): return "bad frame from the server: \(e)"
        case .channel(let e): return "channel error: \(e)"
        case .unexpected(let what): return what
        }
    }
}

/// One blocking TCP connection to the server on 127.0.0.1 that writes and
/// reads frames. Every read and write is bounded by `SO_RCVTIMEO` and
/// `SO_SNDTIMEO`, so no call waits longer than `timeout` seconds. Used by one
/// thread at a time.
final class FrameSocket {
    private(set) var fd: Int32
    private var reader = FrameReader()
    private var chunk: [UInt8]

    /// Connects to 127.0.0.1:`port` with `TCP_NODELAY` and the given timeout,
    /// from the loopback address `source` when one is given (the load test
    /// spreads its attackers over several source addresses).
    init(port: Int, timeout: Double, source: UInt32? = nil, chunkSize: Int = 64 * 1024) throws(WireError) {
        chunk = [UInt8](repeating: 0, count: chunkSize)
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw .system("socket", errno) }
        fd = s
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1e6))
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            // The port is chosen at connect, per destination: each source
            // address gets the whole ephemeral range, not one shared pool.
            setsockopt(s, Int32(IPPROTO_IP), IP_BIND_ADDRESS_NO_PORT, &one, socklen_t(MemoryLayout<Int32>.size))
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = source.bigEndian
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let code = errno
                Glibc.close(s)
                fd = -1
                throw .system("bind", code)
            }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let code = errno
            Glibc.close(s)
            fd = -1
            throw .system("connect", code)
        }
    }

    /// Writes the frames of `actions` in one `write` where possible.
    func send(_ actions: [ChannelAction]) throws(WireError) {
        var bytes: [UInt8] = []
        for case .send(let frame) in actions { bytes += frame.encoded }
        try write(bytes)
    }

    /// Writes raw bytes (the load test's malformed input too).
    func write(_ bytes: [UInt8]) throws(WireError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system("send", errno)
            }
            offset += n
        }
    }

    /// The next frame from the server.
    func receive() throws(WireError) -> Frame {
        while true {
            do throws(FrameError) {
                if let frame = try reader.next() { return frame }
            } catch {
                throw .frame(error)
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { throw .closed }
            if n < 0 {
                if errno == EINTR { continue }
                throw .system("recv", errno)
            }
            reader.append(chunk[0..<n])
        }
    }

    /// Closes with a reset (`SO_LINGER` 0), so no TIME_WAIT is left to use up
    /// the loopback's ephemeral ports during a long run.
    func close() {
        guard fd >= 0 else { return }
        Self.abort(fd)
        fd = -1
    }

    /// Hands the descriptor over; this object no longer closes it.
    func release() -> Int32 {
        defer { fd = -1 }
        return fd
    }

    /// Closes `fd` with a reset.
    static func abort(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
    }

    deinit { close() }
}

/// A client site of the load generator: a site key (its agent and Noise
/// static key) and one user with a certificate, as a partner site would have.
struct ClientIdentity: Sendable {
    let local: LocalSite
    let userKey: SigningKey
    let chad: CHAD
    let cert: Certificate

    /// A fresh identity whose user is `bench<index>`. The CHAD's port is the
    /// discard port: the server never needs to dial these clients, because
    /// the setup dialog leaves nothing in its outbox.
    init(index: Int, date: String) throws {
        let siteKey = SigningKey.generate()
        var secret = siteKey.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        local = LocalSite(agent: try AgentID(publicKey: siteKey.publicKey), staticKey: try KeyPair(privateKey: secret))
        userKey = SigningKey.generate()
        chad = CHAD(cuid: try CUID("bench\(index)"), agent: local.agent, address: try SiteAddress(host: "127.0.0.1", port: 9))
        cert = try Certificate(
            chad: chad, type: .person, name: "Bench Client \(index)", email: nil,
            publicKey: userKey.publicKey, date: date)
    }

    /// The ticket message (protocol section 6) for `token` issued by `inviter`.
    func ticketMessage(token: String, inviter: CHAD) -> JSONValue {
        .object([
            "target": "tally", "action": "ticket", "to": inviter.json, "from": chad.json,
            "ticket": .object(["token": .string(token), "cert": cert.json])
        ])
    }
}

/// An open channel from the load generator: the socket and its machine.
struct ClientChannel {
    let socket: FrameSocket
    var machine: ChannelMachine

    /// First contact: IK with the ticket message; returns once `A` is read.
    static func firstContact(_ me: ClientIdentity, server: AgentID, ticket: JSONValue, port: Int, timeout: Double) throws(WireError) -> ClientChannel
    {
        let (machine, actions): (ChannelMachine, [ChannelAction])
        do throws(ChannelError) {
            (machine, actions) = try ChannelMachine.firstContact(local: me.local, remote: server, ticketMessage: ticket)
        } catch { throw .channel(error) }
        return try open(machine, actions, port: port, timeout: timeout)
    }

    /// Later contact: `N` and `K` in one write; returns once `A` is read.
    static func laterContact(_ me: ClientIdentity, server: AgentID, port: Int, timeout: Double) throws(WireError) -> ClientChannel {
        let (machine, actions): (ChannelMachine, [ChannelAction])
        do throws(ChannelError) {
            (machine, actions) = try ChannelMachine.laterContact(local: me.local, remote: server)
        } catch { throw .channel(error) }
        return try open(machine, actions, port: port, timeout: timeout)
    }

    private static func open(_ m: ChannelMachine, _ actions: [ChannelAction], port: Int, timeout: Double) throws(WireError) -> ClientChannel {
        var machine = m
        let socket = try FrameSocket(port: port, timeout: timeout)
        try socket.send(actions)
        let reply = machine.receive(try socket.receive())
        guard reply.contains(where: { if case .opened = $0 { return true } else { return false } }) else {
            machine.shutdown()
            throw .unexpected("handshake not completed: \(reply)")
        }
        return ClientChannel(socket: socket, machine: machine)
    }

    /// Encrypts and writes one message.
    mutating func send(_ message: JSONValue) throws(WireError) {
        let actions: [ChannelAction]
        do throws(ChannelError) {
            actions = try machine.send(message)
        } catch { throw .channel(error) }
        try socket.send(actions)
    }

    /// Reads frames until one delivers a message; drops nothing silently.
    mutating func receive() throws(WireError) -> JSONValue {
        for action in machine.receive(try socket.receive()) {
            switch action {
            case .deliver(let message): return message
            case .dropped(let why), .close(let why): throw .unexpected("server message not accepted: \(why)")
            default: continue
            }
        }
        throw .unexpected("a frame without a message")
    }

    /// Wipes the keys and closes the socket with a reset.
    mutating func close() {
        machine.shutdown()
        socket.close()
    }
}
