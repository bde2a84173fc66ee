import ChipModel

/// Fuzz target `certificate`: the certificate validator (a user's
/// certificate arrives in tickets and tallies). One that parses must read
/// back from the JSON the site writes for it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let value = try? JSONValue(parsing: UnsafeBufferPointer(start: data, count: size)),
        let cert = try? Certificate(json: value)
    else { return 0 }
    guard (try? Certificate(json: cert.json)) == cert else { violated("a certificate does not read back from its JSON") }
    return 0
}
