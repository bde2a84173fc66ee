import ChipModel

/// Fuzz target `tally`: the tally object validators. The input is JSON: a
/// tally message (`object` is the tally), a tally object (core + `sign`) or a
/// bare core. What parses has its signatures checked against its own
/// certificates, and its canonical bytes must read back to the same core.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let value = try? JSONValue(parsing: UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    for candidate in [value, value["object"]].compactMap({ $0 }) {
        if let (core, sign) = try? TallyObject.parse(candidate) {
            _ = core.verify(sign.stock, by: .stock)
            _ = core.verify(sign.foil, by: .foil)
            check(core)
        }
        if let core = try? TallyCore(json: candidate) { check(core) }
    }
    return 0
}

private func check(_ core: TallyCore) {
    _ = core.limit(.stock) + core.limit(.foil)
    guard let again = try? JSONValue(parsing: core.canonicalBytes), (try? TallyCore(json: again)) == core else {
        violated("a tally core does not read back from its canonical bytes")
    }
}
