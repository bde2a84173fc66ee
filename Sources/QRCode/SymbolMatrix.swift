/// The module matrix under construction: function patterns (ISO/IEC 18004,
/// 6.3), codeword placement (7.7.3), data masking (7.8) and the format and
/// version information (7.9, 7.10).
struct SymbolMatrix {
    /// Side length in modules.
    let size: Int
    /// The version, 1...40.
    let version: Int
    /// Module colours row by row, `true` for dark.
    private(set) var dark: [Bool]
    /// Modules belonging to function patterns or format/version information;
    /// codewords are placed and masks applied only elsewhere.
    private(set) var isFunction: [Bool]

    /// Row and column coordinates of the alignment pattern centres for
    /// versions 1...40 (ISO/IEC 18004, Annex E, Table E.1). Patterns sit at
    /// every combination of two coordinates, except the three overlapping
    /// finder patterns. Version 1 has none.
    static let alignmentPatternCentreTable: [[Int]] = [
        [],
        [6, 18], [6, 22], [6, 26], [6, 30], [6, 34],
        [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50], [6, 30, 54], [6, 32, 58], [6, 34, 62],
        [6, 26, 46, 66], [6, 26, 48, 70], [6, 26, 50, 74], [6, 30, 54, 78], [6, 30, 56, 82],
        [6, 30, 58, 86], [6, 34, 62, 90],
        [6, 28, 50, 72, 94], [6, 26, 50, 74, 98], [6, 30, 54, 78, 102], [6, 28, 54, 80, 106],
        [6, 32, 58, 84, 110], [6, 30, 58, 86, 114], [6, 34, 62, 90, 118],
        [6, 26, 50, 74, 98, 122], [6, 30, 54, 78, 102, 126], [6, 26, 52, 78, 104, 130],
        [6, 30, 56, 82, 108, 134], [6, 34, 60, 86, 112, 138], [6, 30, 58, 86, 114, 142],
        [6, 34, 62, 90, 118, 146],
        [6, 30, 54, 78, 102, 126, 150], [6, 24, 50, 76, 102, 128, 154], [6, 28, 54, 80, 106, 132, 158],
        [6, 32, 58, 84, 110, 136, 162], [6, 26, 54, 82, 110, 138, 166], [6, 30, 58, 86, 114, 142, 170]
    ]

    /// The alignment pattern centre coordinates of `version`.
    static func alignmentPatternCentres(version: Int) -> [Int] {
        alignmentPatternCentreTable[version - 1]
    }

    /// Row and column of the timing patterns (ISO/IEC 18004, 6.3.5).
    static let timingPatternPosition = 6

    /// A matrix with all function patterns drawn and the format and version
    /// information areas reserved.
    init(version: Int) {
        self.version = version
        self.size = QRCode.size(version: version)
        self.dark = Array(repeating: false, count: size * size)
        self.isFunction = Array(repeating: false, count: size * size)
        drawFunctionPatterns()
    }

    private mutating func setFunction(_ x: Int, _ y: Int, dark isDark: Bool) {
        dark[y * size + x] = isDark
        isFunction[y * size + x] = true
    }

    private mutating func drawFunctionPatterns() {
        let timing = Self.timingPatternPosition
        for i in 0..<size {
            setFunction(timing, i, dark: i % 2 == 0)
            setFunction(i, timing, dark: i % 2 == 0)
        }
        // Finder patterns with their separators, centred 3 modules in from the corners.
        drawFinderPattern(centreX: 3, centreY: 3)
        drawFinderPattern(centreX: size - 4, centreY: 3)
        drawFinderPattern(centreX: 3, centreY: size - 4)

        let centres = Self.alignmentPatternCentres(version: version)
        let last = centres.count - 1
        for (i, y) in centres.enumerated() {
            for (j, x) in centres.enumerated() {
                let overlapsFinder = (i == 0 && j == 0) || (i == 0 && j == last) || (i == last && j == 0)
                if !overlapsFinder { drawAlignmentPattern(centreX: x, centreY: y) }
            }
        }
        // Reserve the format information (written per mask) and the dark module.
        drawFormatInformation(0)
        drawVersionInformation()
    }

    /// A 7 × 7 finder pattern and its one-module light separator, clipped to the symbol.
    private mutating func drawFinderPattern(centreX: Int, centreY: Int) {
        for dy in -4...4 {
            for dx in -4...4 {
                let x = centreX + dx, y = centreY + dy
                guard x >= 0, x < size, y >= 0, y < size else { continue }
                let ring = max(abs(dx), abs(dy))
                setFunction(x, y, dark: ring != 2 && ring != 4)
            }
        }
    }

    /// A 5 × 5 alignment pattern: dark centre, light ring, dark ring.
    private mutating func drawAlignmentPattern(centreX: Int, centreY: Int) {
        for dy in -2...2 {
            for dx in -2...2 {
                setFunction(centreX + dx, centreY + dy, dark: max(abs(dx), abs(dy)) != 1)
            }
        }
    }

    /// Writes both copies of the 15-bit format information and the dark
    /// module (ISO/IEC 18004, 7.9.1, Figure 25). Bit 0 is the least significant.
    mutating func drawFormatInformation(_ bits: Int) {
        func bit(_ i: Int) -> Bool { bits >> i & 1 == 1 }
        // Around the top left finder: down column 8, then leftwards along row 8,
        // stepping over the timing patterns.
        for i in 0...5 { setFunction(8, i, dark: bit(i)) }
        setFunction(8, 7, dark: bit(6))
        setFunction(8, 8, dark: bit(7))
        setFunction(7, 8, dark: bit(8))
        for i in 9...14 { setFunction(14 - i, 8, dark: bit(i)) }
        // Row 8 under the top right finder, then column 8 beside the bottom left one.
        for i in 0...7 { setFunction(size - 1 - i, 8, dark: bit(i)) }
        for i in 8...14 { setFunction(8, size - 15 + i, dark: bit(i)) }
        // The dark module (ISO/IEC 18004, 7.9.1), always dark.
        setFunction(8, size - 8, dark: true)
    }

    /// Writes both 6 × 3 copies of the version information for versions 7
    /// and above (ISO/IEC 18004, 7.10, Figure 27): bit i at column i / 3,
    /// row size - 11 + i % 3 in the bottom left, and transposed in the top right.
    private mutating func drawVersionInformation() {
        guard version >= FormatInformation.firstVersionWithVersionInformation else { return }
        let bits = FormatInformation.versionBits(version: version)
        for i in 0..<18 {
            let isDark = bits >> i & 1 == 1
            let near = i / 3, far = size - 11 + i % 3
            setFunction(near, far, dark: isDark)
            setFunction(far, near, dark: isDark)
        }
    }

    /// Places the codewords' bits, most significant first, in the two-module
    /// wide columns from the bottom right, alternately upwards and downwards,
    /// skipping function modules and the vertical timing pattern
    /// (ISO/IEC 18004, 7.7.3). Remainder bits stay light (0).
    mutating func placeCodewords(_ codewords: [UInt8]) {
        let bitCount = codewords.count * 8
        var index = 0
        var upward = true
        var right = size - 1
        while right >= 1 {
            if right == Self.timingPatternPosition { right -= 1 }
            for step in 0..<size {
                let y = upward ? size - 1 - step : step
                for x in [right, right - 1] where !isFunction[y * size + x] {
                    if index < bitCount {
                        dark[y * size + x] = codewords[index / 8] >> (7 - index % 8) & 1 == 1
                    }
                    index += 1
                }
            }
            upward.toggle()
            right -= 2
        }
    }

    /// A copy with data mask pattern `mask` applied to the non-function
    /// modules and the matching format information written.
    func masked(_ mask: Int, ecl: ErrorCorrection) -> SymbolMatrix {
        var result = self
        for y in 0..<size {
            for x in 0..<size where !isFunction[y * size + x] && Self.maskCondition(mask, x: x, y: y) {
                result.dark[y * size + x].toggle()
            }
        }
        result.drawFormatInformation(FormatInformation.formatBits(ecl: ecl, mask: mask))
        return result
    }

    /// The data mask pattern conditions of ISO/IEC 18004, Table 10, with
    /// i the row (`y`) and j the column (`x`); a module is inverted where the
    /// condition holds.
    static func maskCondition(_ mask: Int, x j: Int, y i: Int) -> Bool {
        switch mask {
        case 0: (i + j) % 2 == 0
        case 1: i % 2 == 0
        case 2: j % 3 == 0
        case 3: (i + j) % 3 == 0
        case 4: (i / 2 + j / 3) % 2 == 0
        case 5: (i * j) % 2 + (i * j) % 3 == 0
        case 6: ((i * j) % 2 + (i * j) % 3) % 2 == 0
        default: ((i + j) % 2 + (i * j) % 3) % 2 == 0
        }
    }
}
