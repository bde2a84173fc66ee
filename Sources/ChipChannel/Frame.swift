/// The header byte of a frame (protocol section 2).
public enum FrameHeader: UInt8, Sendable, CaseIterable {
    /// Initiator: IK message 1, whose payload is the ticket message.
    case I = 0x49
    /// Initiator: N message 1, whose payload names the initiator's agent.
    case N = 0x4E
    /// Initiator, right after `N`: KK message 1.
    case K = 0x4B
    /// Responder: message 2 of IK or KK, which completes the handshake.
    case A = 0x41
    /// Either side: a transport message carrying one JSON message.
    case T = 0x54
}

/// One frame: a header byte and a Noise message.
public struct Frame: Sendable, Equatable {
    public var header: FrameHeader
    public var body: [UInt8]

    public init(_ header: FrameHeader, _ body: [UInt8]) {
        self.header = header
        self.body = body
    }

    /// The frame as it goes on the wire: 4-byte big-endian length, header, body.
    public var encoded: [UInt8] {
        let length = UInt32(1 + body.count)
        var out = [UInt8]()
        out.reserveCapacity(4 + Int(length))
        out.append(UInt8(truncatingIfNeeded: length >> 24))
        out.append(UInt8(truncatingIfNeeded: length >> 16))
        out.append(UInt8(truncatingIfNeeded: length >> 8))
        out.append(UInt8(truncatingIfNeeded: length))
        out.append(header.rawValue)
        out.append(contentsOf: body)
        return out
    }
}

/// Frame length bounds. A Noise message is 16 to 65535 bytes (at least a
/// tag), so with the header byte `17 <= L <= 65536`.
public enum FrameLimits {
    public static let lengthPrefixBytes = 4
    public static let minLength = 17
    public static let maxLength = 65536
}

/// Why a byte stream is not a valid frame sequence. Any of them closes the
/// connection silently.
public enum FrameError: Error, Equatable, Sendable {
    case lengthOutOfRange(UInt32)
    case unknownHeader(UInt8)
}

/// Cuts a byte stream into frames, checking each length before buffering
/// its body and each header before handing the frame on. Bytes may arrive in
/// any chunks. The buffer never holds more than one frame plus one chunk.
public struct FrameReader: Sendable {
    public let maxLength: Int
    private var buffer: [UInt8] = []
    private var start = 0

    /// `maxLength` may be lowered below 65536 by configuration, never raised.
    public init(maxLength: Int = FrameLimits.maxLength) {
        self.maxLength = min(max(maxLength, FrameLimits.minLength), FrameLimits.maxLength)
    }

    /// Bytes buffered but not yet returned as frames.
    public var bufferedCount: Int { buffer.count - start }

    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if start > 0, start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete frame, nil if more bytes are needed, or an error as
    /// soon as the length prefix or header byte is known to be bad.
    public mutating func next() throws(FrameError) -> Frame? {
        let available = buffer.count - start
        guard available >= FrameLimits.lengthPrefixBytes else { return nil }
        let length =
            UInt32(buffer[start]) << 24 | UInt32(buffer[start + 1]) << 16
            | UInt32(buffer[start + 2]) << 8 | UInt32(buffer[start + 3])
        guard length >= UInt32(FrameLimits.minLength), length <= UInt32(maxLength) else {
            throw .lengthOutOfRange(length)
        }
        if available >= FrameLimits.lengthPrefixBytes + 1 {
            let h = buffer[start + FrameLimits.lengthPrefixBytes]
            guard FrameHeader(rawValue: h) != nil else { throw .unknownHeader(h) }
        }
        guard available >= FrameLimits.lengthPrefixBytes + Int(length) else { return nil }
        let headerAt = start + FrameLimits.lengthPrefixBytes
        guard let header = FrameHeader(rawValue: buffer[headerAt]) else { throw .unknownHeader(buffer[headerAt]) }
        let body = Array(buffer[(headerAt + 1)..<(headerAt + Int(length))])
        start = headerAt + Int(length)
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 65536 {
            buffer.removeFirst(start)
            start = 0
        }
        return Frame(header, body)
    }
}
