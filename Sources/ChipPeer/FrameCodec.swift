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
/// trickles one byte at a time. Used on the responder side only.
final class FrameIdleHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias InboundOut = Frame

    private let timeout: TimeAmount
    private var lastFrame = NIODeadline.now()
    private var check: RepeatedTask?

    init(timeout seconds: Double) { timeout = .nanoseconds(Int64(seconds * 1e9)) }

    func channelActive(context: ChannelHandlerContext) {
        lastFrame = .now()
        let interval = TimeAmount.nanoseconds(max(timeout.nanoseconds / 4, 10_000_000))
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (handler, context) = loopBound.value
            if NIODeadline.now() - handler.lastFrame > handler.timeout { context.close(promise: nil) }
        }
        context.fireChannelActive()
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
