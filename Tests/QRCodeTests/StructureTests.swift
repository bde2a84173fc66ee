import Testing
@testable import QRCode

/// The function patterns and the placement of format and version information.
@Suite("Symbol structure")
struct StructureTests {
    /// Annex E's table against the rule it follows: the first centre at 6,
    /// the last at size − 7, the others evenly spaced by an even step
    /// (26 for version 32), the first gap taking what is left.
    @Test(arguments: 2...40)
    func alignmentPatternCentres(version: Int) {
        let size = QRCode.size(version: version)
        let count = version / 7 + 2
        let step = version == 32 ? 26 : (size - 13 + 2 * count - 3) / (2 * count - 2) * 2
        var expected = [6]
        for i in stride(from: count - 2, through: 0, by: -1) { expected.append(size - 7 - i * step) }
        #expect(SymbolMatrix.alignmentPatternCentres(version: version) == expected)
    }

    /// The counted data modules equal the closed form used for capacities.
    @Test(arguments: 1...40)
    func rawDataModules(version: Int) {
        let matrix = SymbolMatrix(version: version)
        let free = matrix.isFunction.filter { !$0 }.count
        #expect(free == SymbolLayout.rawDataModules(version: version))
    }

    /// Placing exactly the total number of codewords fills every data module
    /// but the 0...7 remainder bits (ISO/IEC 18004, Table 1).
    @Test(arguments: [1, 2, 7, 14, 21, 40])
    func remainderBits(version: Int) {
        let total = SymbolLayout.totalCodewords(version: version)
        var matrix = SymbolMatrix(version: version)
        matrix.placeCodewords([UInt8](repeating: 0xFF, count: total))
        let darkData = zip(matrix.dark, matrix.isFunction).filter { $0 && !$1 }.count
        let remainder = SymbolLayout.rawDataModules(version: version) - darkData
        let expected = [1: 0, 2: 7, 7: 0, 14: 3, 21: 4, 40: 0]
        #expect(remainder == expected[version])
    }

    @Test(arguments: [1, 6, 7, 23, 40])
    func functionPatterns(version: Int) throws {
        let code = try QRCode.encode(Array(repeating: 0x20, count: QRCode.byteCapacity(version: version, ecl: .medium)))
        #expect(code.version == version)
        let n = code.size
        #expect(n == 17 + 4 * version)
        // Finder patterns: 7 × 7 with a light ring of width one at distance 2, and separators.
        for (cx, cy) in [(3, 3), (n - 4, 3), (3, n - 4)] {
            for dy in -4...4 {
                for dx in -4...4 {
                    let ring = max(abs(dx), abs(dy))
                    #expect(code.isDark(x: cx + dx, y: cy + dy) == (ring <= 3 && ring != 2))
                }
            }
        }
        for i in 8..<(n - 8) {
            #expect(code.isDark(x: i, y: 6) == (i % 2 == 0))
            #expect(code.isDark(x: 6, y: i) == (i % 2 == 0))
        }
        #expect(code.isDark(x: 8, y: n - 8), "dark module")
        #expect(!code.isDark(x: -1, y: 0) && !code.isDark(x: 0, y: n))
    }

    /// Both copies of the format information, read bit by bit from the module
    /// positions drawn in ISO/IEC 18004 Figure 25 (bit 14 first).
    @Test func formatInformationCopies() throws {
        for ecl in ErrorCorrection.allCases {
            for mask in 0..<QRCode.maskPatternCount {
                let code = try QRCode.encode(Array("format".utf8), ecl: ecl, forcedMask: mask)
                let n = code.size
                let first: [(Int, Int)] = [
                    (0, 8), (1, 8), (2, 8), (3, 8), (4, 8), (5, 8), (7, 8), (8, 8),
                    (8, 7), (8, 5), (8, 4), (8, 3), (8, 2), (8, 1), (8, 0)
                ]
                let second: [(Int, Int)] = (0..<7).map { (8, n - 1 - $0) } + (0..<8).map { (n - 8 + $0, 8) }
                let expected = FormatInformation.formatBits(ecl: ecl, mask: mask)
                for positions in [first, second] {
                    let word = positions.reduce(0) { $0 << 1 | (code.isDark(x: $1.0, y: $1.1) ? 1 : 0) }
                    #expect(word == expected, "\(ecl) mask \(mask)")
                }
            }
        }
    }

    /// Version information (ISO/IEC 18004, Figure 27): in the lower left block,
    /// bit i is at column i / 3 and row size − 11 + i mod 3; the upper right
    /// block is its transpose.
    @Test func versionInformationCopies() throws {
        let code = try QRCode.encode([UInt8](repeating: 0x20, count: QRCode.byteCapacity(version: 7, ecl: .medium)))
        #expect(code.version == 7)
        let n = code.size
        var lowerLeft = 0, upperRight = 0
        for i in stride(from: 17, through: 0, by: -1) {
            lowerLeft = lowerLeft << 1 | (code.isDark(x: i / 3, y: n - 11 + i % 3) ? 1 : 0)
            upperRight = upperRight << 1 | (code.isDark(x: n - 11 + i % 3, y: i / 3) ? 1 : 0)
        }
        #expect(lowerLeft == 0x07C94)
        #expect(upperRight == 0x07C94)
    }

    /// The penalty rules on small hand-made lines and blocks.
    @Test func penaltyRules() {
        let d = true, l = false
        #expect(Penalty.lineScore([d, d, d, d]) == 0)
        #expect(Penalty.lineScore([d, d, d, d, d]) == 3)
        #expect(Penalty.lineScore([l, l, l, l, l, l, l, d]) == 5)
        #expect(Penalty.lineScore([d, d, d, d, d, l, l, l, l, l]) == 6)
        // 1:1:3:1:1 with four light modules after; the ends of the line count as light.
        #expect(Penalty.lineScore([d, l, d, d, d, l, d, l, l, l, l]) == 40)
        #expect(Penalty.lineScore([d, d, l, d, l, d, d, d, l, d, d, d, l, d, d]) == 0)
        #expect(Penalty.lineScore([d, l, d, d, d, l, d]) == 40)
        #expect(Penalty.blockScore([d, d, d, d, d, d, l, l, l], size: 3) == 6)
        #expect(Penalty.balanceScore([d, l]) == 0)
        #expect(Penalty.balanceScore([d, d, d, l, l, l, l, l, l, l]) == 40)
        #expect(Penalty.balanceScore(Array(repeating: d, count: 9) + [l]) == 80)
    }

    /// Across ordinary inputs the penalty evaluation picks every mask.
    @Test func everyMaskGetsChosen() throws {
        var counts = [Int](repeating: 0, count: QRCode.maskPatternCount)
        for i in 0..<600 {
            counts[try QRCode.encode(randomBytes(1 + i % 300, seed: UInt64(i))).mask] += 1
        }
        #expect(counts.allSatisfy { $0 > 0 }, "times each mask was chosen: \(counts)")
    }

    /// The chosen mask has the lowest penalty of the eight.
    @Test func chosenMaskHasLowestPenalty() throws {
        let bytes = Array("https://mychips.org/invite?token=0123456789abcdef".utf8)
        let code = try QRCode.encode(bytes)
        let penalties = try (0..<QRCode.maskPatternCount).map { mask in
            let forced = try QRCode.encode(bytes, ecl: .medium, forcedMask: mask)
            return Penalty.score(forced.modules, size: forced.size)
        }
        #expect(penalties[code.mask] == penalties.min())
        #expect(penalties.firstIndex(of: penalties.min() ?? -1) == code.mask)
    }
}
