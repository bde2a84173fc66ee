import ChipModel

/// Fuzz target `ticket`: the ticket text parser (JSON form, link form, and
/// whatever `@FILE` holds, which reaches the same parser). A ticket that
/// parses must parse again from its own JSON form (equal) and link form
/// (same token and CHAD), as the site prints both for people to pass on.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let ticket = try? TallyTicket(parsing: text) else { return 0 }
    guard (try? TallyTicket(parsing: ticket.json.canonicalString)) == ticket else {
        violated("a ticket's JSON form does not parse back to it")
    }
    guard let fromLink = try? TallyTicket(parsing: ticket.link), fromLink.token == ticket.token, fromLink.chad == ticket.chad else {
        violated("a ticket's link does not parse back to it")
    }
    return 0
}
