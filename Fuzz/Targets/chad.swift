import ChipModel

/// Fuzz target `chad`: the CHAD readers, JSON (`CHAD(json:)`) and text
/// (`CHAD(text:)`, `cuid:agent@host:port`), on the same input. A CHAD that
/// parses must read back from its own JSON and text forms.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    if let value = try? JSONValue(parsing: input), let chad = try? CHAD(json: value) {
        check(chad)
    }
    if let chad = try? CHAD(text: String(decoding: input, as: UTF8.self)) {
        check(chad)
    }
    return 0
}

private func check(_ chad: CHAD) {
    guard (try? CHAD(json: chad.json)) == chad else { violated("a CHAD does not read back from its JSON") }
    guard (try? CHAD(text: chad.description)) == chad else { violated("a CHAD does not read back from its text \(chad)") }
}
