import ChipChannel
import ChipModel

/// Fuzz target `channel`: a whole responder `ChannelMachine` (site B) fed the
/// frames parsed from the input.
///
/// Byte 0 holds the site's answers to the machine's questions (bit i answers
/// question i: ticket valid, agent known); the rest is the byte stream from
/// the peer, cut into frames by `FrameReader` as the network edge does. A
/// frame error ends the connection, as does a `close` action; once the
/// channel opens the machine also sends one message back.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let answers = input.first else { return 0 }
    var reader = FrameReader()
    reader.append(input.dropFirst())
    var machine = ChannelMachine.responder(local: Fixed.siteB.local)
    var asked = 0
    while !machine.isClosed {
        guard let frame = try? reader.next() else { break }
        var pending = machine.receive(frame)
        while !pending.isEmpty {
            let action = pending.removeFirst()
            switch action {
            case .ask:
                pending += machine.answer(answers >> (asked % 8) & 1 == 1)
                asked += 1
            case .opened:
                pending += (try? machine.send(["target": "tally", "action": "ping"])) ?? []
            case .close:
                guard machine.isClosed else { violated("close action on a machine that is not closed") }
            case .send, .deliver, .dropped:
                break
            }
        }
    }
    machine.shutdown()
    return 0
}
