import ChipModel

/// Fuzz target `canonical`: canonical JSON is stable. For every input the
/// parser accepts, parse → canonicalBytes → parse must give an equal value
/// and identical canonical bytes; the indented form (`--json` output) must
/// parse back to an equal value too. A violation traps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let value = try? JSONValue(parsing: UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    let canonical = value.canonicalBytes
    let again: JSONValue
    do {
        again = try JSONValue(parsing: canonical)
    } catch {
        violated("canonical bytes do not parse: \(error)")
    }
    guard again == value else { violated("canonical round trip changed the value") }
    guard again.canonicalBytes == canonical else { violated("canonical bytes changed on a second round trip") }
    guard (try? JSONValue(parsing: value.prettyString)) == value else { violated("pretty form does not parse back") }
    return 0
}
