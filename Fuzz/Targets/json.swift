import ChipModel

/// Fuzz target `json`: the strict JSON parser with the standard limits and
/// with a shallow depth limit, and the writers on whatever it accepts.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    if let value = try? JSONValue(parsing: input) {
        _ = value.canonicalBytes
        _ = value.prettyString
    }
    _ = try? JSONValue(parsing: input, limits: JSONLimits(maxDepth: 4, maxBytes: 256))
    _ = try? JSONValue(parsing: String(decoding: input, as: UTF8.self))
    return 0
}
