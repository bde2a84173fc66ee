import TestSupport
import Testing
@testable import QRCode

/// Values taken from ISO/IEC 18004 and its well-known worked examples, or
/// checked against a property that the encoder does not itself use.
@Suite("Known answers")
struct KnownAnswerTests {
    /// ISO/IEC 18004 Annex I: "01234567" in numeric mode, version 1-M.
    @Test func reedSolomonOfTheStandardsExample() {
        let data: [UInt8] = [
            0x10, 0x20, 0x0C, 0x56, 0x61, 0x80, 0xEC, 0x11,
            0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11
        ]
        let ec: [UInt8] = [0xA5, 0x24, 0xD4, 0xC1, 0xED, 0x36, 0xC7, 0x87, 0x2C, 0x55]
        #expect(GaloisField.errorCorrectionCodewords(for: data, degree: 10) == ec)
    }

    /// The widely used "HELLO WORLD" example, alphanumeric mode, version 1-M.
    @Test func reedSolomonOfHelloWorld() {
        let data: [UInt8] = [32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17]
        let ec: [UInt8] = [196, 35, 39, 119, 235, 215, 231, 226, 93, 23]
        #expect(GaloisField.errorCorrectionCodewords(for: data, degree: 10) == ec)
    }

    /// ISO/IEC 18004 Annex A lists the generator polynomial for 7 error
    /// correction codewords as exponents of α:
    /// x^7 + α^87 x^6 + α^229 x^5 + α^146 x^4 + α^149 x^3 + α^238 x^2 + α^102 x + α^21.
    @Test func generatorPolynomialOfDegree7() {
        let exponents = GaloisField.generatorPolynomial(degree: 7).map { GaloisField.logarithms[Int($0)] }
        #expect(exponents == [0, 87, 229, 146, 149, 238, 102, 21])
    }

    /// Every codeword of a Reed-Solomon code vanishes at the generator's
    /// roots α^0 … α^(n−1); evaluated here by Horner's rule, independently of
    /// the polynomial division the encoder performs.
    @Test(arguments: [7, 10, 13, 17, 22, 26, 28, 30])
    func codewordsVanishAtTheRoots(degree: Int) {
        var random = SeededRandom(seed: UInt64(degree))
        let data = (0..<(100 + degree)).map { _ in UInt8.random(in: 0...255, using: &random) }
        let codeword = data + GaloisField.errorCorrectionCodewords(for: data, degree: degree)
        for i in 0..<degree {
            let root = GaloisField.exponents[i]
            let value = codeword.reduce(UInt8(0)) { GaloisField.multiply($0, root) ^ $1 }
            #expect(value == 0, "α^\(i)")
        }
    }

    /// ISO/IEC 18004 Annex C, Table C.1: all 32 format information words.
    @Test func formatInformation() {
        let table: [ErrorCorrection: [Int]] = [
            .low: [
                0b111011111000100, 0b111001011110011, 0b111110110101010, 0b111100010011101,
                0b110011000101111, 0b110001100011000, 0b110110001000001, 0b110100101110110
            ],
            .medium: [
                0b101010000010010, 0b101000100100101, 0b101111001111100, 0b101101101001011,
                0b100010111111001, 0b100000011001110, 0b100111110010111, 0b100101010100000
            ],
            .quartile: [
                0b011010101011111, 0b011000001101000, 0b011111100110001, 0b011101000000110,
                0b010010010110100, 0b010000110000011, 0b010111011011010, 0b010101111101101
            ],
            .high: [
                0b001011010001001, 0b001001110111110, 0b001110011100111, 0b001100111010000,
                0b000011101100010, 0b000001001010101, 0b000110100001100, 0b000100000111011
            ]
        ]
        for (ecl, words) in table {
            for (mask, word) in words.enumerated() {
                #expect(FormatInformation.formatBits(ecl: ecl, mask: mask) == word, "\(ecl) mask \(mask)")
            }
        }
    }

    /// ISO/IEC 18004 Annex D, Table D.1 (a few rows).
    @Test func versionInformation() {
        #expect(FormatInformation.versionBits(version: 7) == 0x07C94)
        #expect(FormatInformation.versionBits(version: 8) == 0x085BC)
        #expect(FormatInformation.versionBits(version: 9) == 0x09A99)
        #expect(FormatInformation.versionBits(version: 40) == 0x28C69)
    }

    /// ISO/IEC 18004 Table 1: total codewords; Table 7: data codewords.
    @Test func codewordCounts() {
        let totals = [1: 26, 2: 44, 6: 172, 7: 196, 10: 346, 14: 581, 21: 1156, 40: 3706]
        for (version, total) in totals {
            #expect(SymbolLayout.totalCodewords(version: version) == total, "version \(version)")
        }
        #expect(SymbolLayout.dataCodewordCount(version: 1, ecl: .medium) == 16)
        #expect(SymbolLayout.dataCodewordCount(version: 5, ecl: .quartile) == 62)
        #expect(SymbolLayout.dataCodewordCount(version: 10, ecl: .medium) == 216)
        #expect(SymbolLayout.dataCodewordCount(version: 40, ecl: .high) == 1276)
    }

    /// ISO/IEC 18004 Table 7, byte mode column.
    @Test func byteCapacities() {
        let expected: [(Int, ErrorCorrection, Int)] = [
            (1, .low, 17), (1, .medium, 14), (1, .quartile, 11), (1, .high, 7),
            (9, .medium, 180), (10, .medium, 213), (20, .medium, 666),
            (40, .low, 2953), (40, .medium, 2331), (40, .quartile, 1663), (40, .high, 1273)
        ]
        for (version, ecl, capacity) in expected {
            #expect(QRCode.byteCapacity(version: version, ecl: ecl) == capacity, "\(version)-\(ecl)")
        }
    }

    @Test func capacityBoundaries() throws {
        #expect(try QRCode.encode([UInt8](repeating: 0x41, count: 14)).version == 1)
        #expect(try QRCode.encode([UInt8](repeating: 0x41, count: 15)).version == 2)
        #expect(try QRCode.encode([UInt8](repeating: 0x41, count: 7), ecl: .high).version == 1)
        #expect(try QRCode.encode([UInt8](repeating: 0x41, count: 8), ecl: .high).version == 2)
        #expect(try QRCode.encode([UInt8](repeating: 0x41, count: 2331)).version == 40)
        #expect(throws: QRCodeError.dataTooLong(byteCount: 2332, maximum: 2331)) {
            try QRCode.encode([UInt8](repeating: 0x41, count: 2332))
        }
        #expect(throws: QRCodeError.dataTooLong(byteCount: 2954, maximum: 2953)) {
            try QRCode.encode([UInt8](repeating: 0x41, count: 2954), ecl: .low)
        }
        // Every version's capacity fits that version, one more byte the next.
        for ecl in ErrorCorrection.allCases {
            for version in 1..<QRCode.maximumVersion {
                let capacity = QRCode.byteCapacity(version: version, ecl: ecl)
                #expect(QRCode.smallestVersion(holding: capacity, ecl: ecl) == version)
                #expect(QRCode.smallestVersion(holding: capacity + 1, ecl: ecl) == version + 1)
            }
        }
        #expect(try QRCode.encode([UInt8]()).version == 1)
    }

    /// The byte-mode data codewords of "chips" in version 1-M, worked by hand:
    /// 0100 | 00000101 | 'c' 'h' 'i' 'p' 's' | 0000 | pad 0xEC 0x11 ….
    @Test func dataCodewords() {
        let codewords = SymbolLayout.dataCodewords(Array("chips".utf8), version: 1, ecl: .medium)
        #expect(
            codewords == [
                0x40, 0x56, 0x36, 0x86, 0x97, 0x07, 0x30,
                0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC
            ])
    }

    /// Version 5-Q has two blocks of 15 and two of 16 data codewords
    /// (ISO/IEC 18004, Table 9); interleaving takes one codeword from each in turn.
    @Test func interleaving() {
        let data = (0..<62).map { UInt8($0) }
        let result = SymbolLayout.interleavedCodewords(data, version: 5, ecl: .quartile)
        #expect(result.count == 134)
        #expect(Array(result.prefix(8)) == [0, 15, 30, 46, 1, 16, 31, 47])
        // The 16th codewords exist only in the two long blocks.
        #expect(Array(result[56..<62]) == [14, 29, 44, 60, 45, 61])
        let secondBlockEC = GaloisField.errorCorrectionCodewords(for: Array(data[15..<30]), degree: 18)
        #expect(result[62 + 1] == secondBlockEC[0])
        #expect(result[62 + 4 * 17 + 1] == secondBlockEC[17])
    }
}

/// Reproducible test data (the shared SplitMix64).
typealias SeededRandom = SplitMix64

func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var random = SeededRandom(seed: seed)
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
}
