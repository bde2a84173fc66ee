import ChipChannel
import NIOCore

/// Bytes in, frames out. Any framing error closes the connection at once
/// without a byte sent back (protocol section 2).
final class FrameDecoder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Frame

    private var reader: FrameReader
    private var failed = false

    init(maxFrameLength: Int) { reader = FrameReader(maxLength: maxFrameLength) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
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
final class FrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = Frame

    func encode(data frame: Frame, out: inout ByteBuffer) {
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
final class FrameIdleHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame

    private let timeout: TimeAmount
    private var lastFrame = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(timeout seconds: Double) { timeout = .nanoseconds(Int64(seconds * 1e9)) }

    func channelActive(context: ChannelHandlerContext) {
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

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastFrame = .now()
        context.fireChannelRead(data)
    }
}
