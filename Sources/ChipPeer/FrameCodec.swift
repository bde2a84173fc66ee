import ChipChannel
import NIOCore

/// Bytes in, frames out. Any framing error closes the connection at once
/// without a byte sent back (protocol section 2). Shared with the user port
/// (ChipUserPort), which frames the same way.
public final class FrameDecoder: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Frame

    private var reader: FrameReader
    private var failed = false

    public init(maxFrameLength: Int) { reader = FrameReader(maxLength: maxFrameLength) }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let buffer = unwrapInboundIn(data)
        reader.append(buffer.readableBytesView)
        do {
            while let frame = try reader.next() {
                context.fireChannelRead(wrapInboundOut(frame))
            }
        } catch {
            failed = true
            context.close(promise: nil)
        }
    }
}

/// Frames out, bytes in the wire format.
public final class FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) {
        out.reserveCapacity(FrameLimits.lengthPrefixBytes + 1 + frame.body.count)
        out.writeInteger(UInt32(1 + frame.body.count), endianness: .big)
        out.writeInteger(frame.header.rawValue)
        out.writeBytes(frame.body)
    }
}

/// Closes a connection that receives no complete frame for `timeout`
/// seconds. Counting frames rather than bytes defeats a slowloris that
/// trickles one byte at a time. Used on the responder side only. One timer
/// per connection, at the earliest moment it could be idle: when it fires
/// after a frame came, it is set again from that frame (no periodic check).
public final class FrameIdleHandler: ChannelInboundHandler {
    public typealias InboundIn = Frame
    public typealias InboundOut = Frame

    private let timeout: TimeAmount
    private var lastFrame = NIODeadline.now()
    private var check: Scheduled<Void>?

    public init(timeout seconds: Double) { timeout = .nanoseconds(Int64(seconds * 1e9)) }

    public func channelActive(context: ChannelHandlerContext) {
        lastFrame = .now()
        arm(context, at: lastFrame + timeout)
        context.fireChannelActive()
    }

    private func arm(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            let due = handler.lastFrame + handler.timeout
            if NIODeadline.now() >= due {
                handler.check = nil
                context.close(promise: nil)
            } else {
                handler.arm(context, at: due)
            }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastFrame = .now()
        context.fireChannelRead(data)
    }
}
