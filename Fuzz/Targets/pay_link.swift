import ChipModel

/// Fuzz target `pay_link`: pay links (`PayLink(text:)`, a link or a bare
/// `cuid:agent`) and sealed boxes (`SealedBox.open` with site B's key, as a
/// linear lift's `find.seal` is opened). The input is UTF-8 text (invalid
/// bytes are replaced). Properties: a parsed link's `text` parses to an equal
/// link with the same text; opening never traps; what opens is at most the
/// box less its overhead, and a box sealed to site B opens to what was sealed.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let link = try? PayLink(text: text) {
        guard let again = try? PayLink(text: link.text), again == link, again.text == link.text else {
            violated("a pay link does not read back from its text")
        }
    }
    let maxBytes = 8192
    if let opened = SealedBox.open(text, with: Fixed.siteB.key, maxBytes: maxBytes) {
        guard let sealed = Base64URL.decode(text), opened.count == sealed.count - SealedBox.overhead else {
            violated("a sealed box opened to the wrong length")
        }
    }
    // Arbitrary bytes (not none: an empty box is refused) sealed to B open with B's key only, to the same bytes.
    if size >= 1, size <= 512, size % 7 == 0 {
        let message = bytes(data, size)
        guard let box = try? SealedBox.seal(message, to: Fixed.siteB.agent),
            SealedBox.open(box, with: Fixed.siteB.key, maxBytes: maxBytes) == message,
            SealedBox.open(box, with: Fixed.siteA.key, maxBytes: maxBytes) == nil
        else { violated("a sealed box does not open to what was sealed, or opens with another key") }
    }
    return 0
}
