import ChipModel

/// Fuzz target `chit`: the chit validator. The input is JSON: a chit message
/// (`object.chits` is a list), or one chit as it travels (core + `sign` +
/// `hash`). Each chit that parses is verified against the fixed tally and
/// must read back from its own travelling form.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let value = try? JSONValue(parsing: UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    var candidates = [value]
    candidates += value["object"]?["chits"]?.arrayValue ?? []
    candidates += value["object"]?["entries"]?.arrayValue ?? []
    for candidate in candidates {
        guard let chit = try? Chit(json: candidate) else { continue }
        _ = chit.verify(in: Fixed.tallyCore)
        _ = Chit.withinLimits(chit.balanceEffect, stockLimit: Fixed.tallyCore.limit(.stock), foilLimit: Fixed.tallyCore.limit(.foil))
        _ = Chain.entryHash(index: 1, prior: Fixed.tallyCore.hash, chitHash: chit.hash)
        guard (try? Chit(json: chit.json)) == chit else { violated("a chit does not read back from its own JSON") }
    }
    return 0
}
