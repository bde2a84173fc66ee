/// Amounts in CHIPs, stored as integer milliCHIPs (protocol section 7).
public enum Amount {
    public static let milliPerChip: Int64 = 1000
    /// Largest amount accepted anywhere: 10^15 milliCHIPs (a trillion CHIPs).
    public static let maxMilli: Int64 = 1_000_000_000_000_000

    /// Parses `12`, `12.5` or `12.345` CHIPs (at most 3 decimals, no sign) to milliCHIPs.
    public static func parse(_ text: String) throws(ModelError) -> Int64 {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.utf8.count <= 13, whole.allSatisfy(\.isASCIIDigit),
            parts.count == 1 || (1...3).contains(parts[1].count) && parts[1].allSatisfy(\.isASCIIDigit),
            let w = Int64(whole)
        else { throw .invalid("invalid amount \(Printable.quote(text)): use CHIPs with up to 3 decimals, e.g. 12.5") }
        var fraction: Int64 = 0
        if parts.count == 2 {
            let digits = String(parts[1]) + String(repeating: "0", count: 3 - parts[1].count)
            fraction = Int64(digits) ?? 0
        }
        let milli = w * milliPerChip + fraction
        guard milli <= maxMilli else { throw .invalid("amount \(text) is too large") }
        return milli
    }

    /// `12.345`, `12.5`, `12`.
    public static func format(_ milli: Int64) -> String {
        let sign = milli < 0 ? "-" : ""
        let m = milli.magnitude
        let whole = m / UInt64(milliPerChip), frac = m % UInt64(milliPerChip)
        guard frac != 0 else { return "\(sign)\(whole)" }
        var f = String(frac)
        f = String(repeating: "0", count: 3 - f.count) + f
        while f.hasSuffix("0") { f.removeLast() }
        return "\(sign)\(whole).\(f)"
    }
}

extension Character {
    var isASCIIDigit: Bool { asciiValue.map { (0x30...0x39).contains($0) } ?? false }
}

/// Durations written as `90s`, `30m`, `48h` or `7d`.
public enum DurationText {
    public static func seconds(_ text: String) throws(ModelError) -> Int64 {
        guard let unit = text.last, let n = Int64(text.dropLast()), n > 0, n <= 100_000_000 else {
            throw .invalid("invalid duration \(Printable.quote(text)): use e.g. 90s, 30m, 48h or 7d")
        }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * 3600
        case "d": return n * 86400
        default: throw .invalid("invalid duration \(Printable.quote(text)): use e.g. 90s, 30m, 48h or 7d")
        }
    }
}
