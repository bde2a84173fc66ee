import ChipChannel
import ChipModel

/// Fuzz target `envelope`: a `T` message's JSON parsed with the channel's
/// limits, then the envelope check, as the responder site B does for a
/// message from its peer, site A.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let limits = JSONLimits(maxDepth: 32, maxBytes: ChannelMachine.maxMessageBytes)
    guard let message = try? JSONValue(parsing: UnsafeBufferPointer(start: data, count: size), limits: limits) else { return 0 }
    switch Envelope.check(message, local: Fixed.siteB.agent, peer: Fixed.siteA.agent) {
    case .success:
        // An accepted message names site A as sender and site B as receiver.
        guard let from = message["from"], let to = message["to"],
            (try? CHAD(json: from))?.agent == Fixed.siteA.agent, (try? CHAD(json: to))?.agent == Fixed.siteB.agent
        else { violated("envelope accepted without the right CHADs") }
    case .failure(let why):
        _ = why.description
    }
    return 0
}
