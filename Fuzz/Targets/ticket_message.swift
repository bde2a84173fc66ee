@testable import ChipChannel
import ChipModel

/// Fuzz target `ticket_message`: the check of the ticket message carried in
/// an `I` handshake's payload (what site B reads after IK message 1 from
/// site A). The handshake itself cannot be forged by a fuzzer, so the payload
/// check is fuzzed directly.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let payload = bytes(data, size)
    guard let ticket = ChannelMachine.ticketPresentation(payload, local: Fixed.siteB.agent, remoteStatic: siteAStatic) else { return 0 }
    guard ticket.to.agent == Fixed.siteB.agent, ticket.from.agent == Fixed.siteA.agent,
        (try? TallyTicket.validate(token: ticket.token)) != nil
    else { violated("ticket message accepted with the wrong agents or token") }
    return 0
}

private let siteAStatic = Fixed.siteA.local.staticKey.publicKey
