/// A QR code symbol (ISO/IEC 18004:2015, Model 2), encoded from bytes in byte mode.
///
/// ```swift
/// let code = try QRCode.encode("https://mychips.org/invite?token=…")
/// print(code.terminalString())
/// try code.pngData().write(to: url)
/// ```
///
/// The symbol is the module matrix only; renderers add the quiet zone.
/// `x` runs left to right and `y` top to bottom, both from 0 to `size - 1`.
public struct QRCode: Sendable, Hashable {
    /// The smallest version, 21 × 21 modules.
    public static let minimumVersion = 1
    /// The largest version, 177 × 177 modules.
    public static let maximumVersion = 40
    /// The number of data mask patterns (ISO/IEC 18004, 7.8.2).
    public static let maskPatternCount = 8
    /// The width of the quiet zone that must surround the symbol, in modules
    /// (ISO/IEC 18004, 6.3.8).
    public static let quietZoneModules = 4

    /// The version, 1...40.
    public let version: Int
    /// The number of modules on each side: 17 + 4 × version.
    public let size: Int
    /// The error correction level.
    public let errorCorrection: ErrorCorrection
    /// The data mask pattern applied, 0...7, chosen by the lowest penalty score.
    public let mask: Int
    /// The modules row by row, `true` for dark.
    let modules: [Bool]

    init(version: Int, errorCorrection: ErrorCorrection, mask: Int, modules: [Bool]) {
        self.version = version
        self.size = Self.size(version: version)
        self.errorCorrection = errorCorrection
        self.mask = mask
        self.modules = modules
    }

    /// Whether the module at column `x`, row `y` is dark. Coordinates outside
    /// the symbol are light, as the quiet zone is.
    public func isDark(x: Int, y: Int) -> Bool {
        guard x >= 0, y >= 0, x < size, y < size else { return false }
        return modules[y * size + x]
    }

    /// Encodes `text` as its UTF-8 bytes in byte mode, without an ECI header;
    /// common readers (zbar, phone cameras) recognise UTF-8 by its form.
    public static func encode(_ text: String, ecl: ErrorCorrection = .medium) throws(QRCodeError) -> QRCode {
        try encode(Array(text.utf8), ecl: ecl)
    }

    /// Encodes `bytes` in byte mode in the smallest version that holds them
    /// at level `ecl`, with the data mask of the lowest penalty score.
    ///
    /// - Throws: ``QRCodeError/dataTooLong(byteCount:maximum:)`` when even
    ///   version 40 cannot hold the bytes at this level.
    public static func encode(_ bytes: [UInt8], ecl: ErrorCorrection = .medium) throws(QRCodeError) -> QRCode {
        try encode(bytes, ecl: ecl, forcedMask: nil)
    }

    /// The encoder. `forcedMask` (0...7) skips the penalty evaluation and
    /// applies that mask; it exists so that tests can push every mask
    /// pattern through a real decoder.
    static func encode(_ bytes: [UInt8], ecl: ErrorCorrection, forcedMask: Int?) throws(QRCodeError) -> QRCode {
        guard let version = smallestVersion(holding: bytes.count, ecl: ecl) else {
            throw .dataTooLong(byteCount: bytes.count, maximum: byteCapacity(version: maximumVersion, ecl: ecl))
        }
        let dataCodewords = SymbolLayout.dataCodewords(bytes, version: version, ecl: ecl)
        let codewords = SymbolLayout.interleavedCodewords(dataCodewords, version: version, ecl: ecl)

        var symbol = SymbolMatrix(version: version)
        symbol.placeCodewords(codewords)

        if let forcedMask {
            precondition((0..<maskPatternCount).contains(forcedMask), "mask pattern out of range")
            return QRCode(
                version: version, errorCorrection: ecl, mask: forcedMask,
                modules: symbol.masked(forcedMask, ecl: ecl).dark)
        }
        var best: (mask: Int, penalty: Int, matrix: SymbolMatrix)?
        for mask in 0..<maskPatternCount {
            let candidate = symbol.masked(mask, ecl: ecl)
            let penalty = Penalty.score(candidate.dark, size: candidate.size)
            if best == nil || penalty < best?.penalty ?? Int.max {
                best = (mask, penalty, candidate)
            }
        }
        // `best` is set in the first iteration; the fallback is unreachable.
        let chosen = best ?? (0, 0, symbol.masked(0, ecl: ecl))
        return QRCode(version: version, errorCorrection: ecl, mask: chosen.mask, modules: chosen.matrix.dark)
    }

    /// The number of modules on each side of a symbol of `version`.
    public static func size(version: Int) -> Int {
        17 + 4 * version
    }

    /// The most bytes that a symbol of `version` holds in byte mode at level `ecl`
    /// (ISO/IEC 18004, Table 7), e.g. 14 for 1-M and 2331 for 40-M.
    public static func byteCapacity(version: Int, ecl: ErrorCorrection) -> Int {
        let dataBits = SymbolLayout.dataCodewordCount(version: version, ecl: ecl) * 8
        let headerBits = SymbolLayout.modeIndicatorBits + SymbolLayout.characterCountBits(version: version)
        return (dataBits - headerBits) / 8
    }

    /// The smallest version holding `byteCount` bytes at `ecl`, or nil.
    static func smallestVersion(holding byteCount: Int, ecl: ErrorCorrection) -> Int? {
        (minimumVersion...maximumVersion).first { byteCapacity(version: $0, ecl: ecl) >= byteCount }
    }
}

/// Why a QR code could not be encoded.
public enum QRCodeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The data is longer than a version 40 symbol holds at the requested level.
    case dataTooLong(byteCount: Int, maximum: Int)

    /// A one-line explanation.
    public var description: String {
        switch self {
        case .dataTooLong(let byteCount, let maximum):
            "QR code data too long: \(byteCount) bytes, at most \(maximum) fit at this error correction level"
        }
    }
}
