/// The BCH-protected format and version information words
/// (ISO/IEC 18004, 7.9 and 7.10, Annexes C and D).
enum FormatInformation {
    /// Generator polynomial of the (15,5) BCH code:
    /// x^10 + x^8 + x^5 + x^4 + x^2 + x + 1 (ISO/IEC 18004, Annex C).
    static let formatGeneratorPolynomial = 0b101_0011_0111
    /// Mask XORed onto the format information so that it is never all zero
    /// (ISO/IEC 18004, 7.9.1).
    static let formatMask = 0b101_0100_0001_0010
    /// Generator polynomial of the (18,6) Golay code:
    /// x^12 + x^11 + x^10 + x^9 + x^8 + x^5 + x^2 + 1 (ISO/IEC 18004, Annex D).
    static let versionGeneratorPolynomial = 0b1_1111_0010_0101
    /// The first version that carries version information (ISO/IEC 18004, 7.10).
    static let firstVersionWithVersionInformation = 7

    /// The 15-bit format information for a level and a data mask pattern
    /// (bit 14 is the most significant, placed as in ISO/IEC 18004, Figure 25).
    static func formatBits(ecl: ErrorCorrection, mask: Int) -> Int {
        let data = ecl.formatBits << 3 | mask
        return (data << 10 | remainder(of: data << 10, generator: formatGeneratorPolynomial, degree: 10))
            ^ formatMask
    }

    /// The 18-bit version information for versions 7 and above.
    static func versionBits(version: Int) -> Int {
        version << 12 | remainder(of: version << 12, generator: versionGeneratorPolynomial, degree: 12)
    }

    /// The remainder of the polynomial over GF(2) `value` divided by `generator`
    /// of the given degree.
    private static func remainder(of value: Int, generator: Int, degree: Int) -> Int {
        var value = value
        var bit = Int.bitWidth - 1 - value.leadingZeroBitCount
        while bit >= degree {
            if value >> bit & 1 == 1 { value ^= generator << (bit - degree) }
            bit -= 1
        }
        return value
    }
}
