/// The data side of the encoding: the bit stream of one byte-mode segment
/// (ISO/IEC 18004, 7.4), the codeword counts, and the division into
/// Reed-Solomon blocks with their interleaving (7.5, 7.6).
enum SymbolLayout {
    /// Mode indicator of byte mode, `0100` (ISO/IEC 18004, Table 2).
    static let byteModeIndicator = 0b0100
    /// Length of a mode indicator in bits.
    static let modeIndicatorBits = 4
    /// Length of the terminator, `0000` (ISO/IEC 18004, 7.4.9).
    static let terminatorBits = 4
    /// Pad codewords, used alternately to fill the data capacity (ISO/IEC 18004, 7.4.10).
    static let padCodewords: [UInt8] = [0b1110_1100, 0b0001_0001]
    /// Versions from which byte mode's character count indicator is 16 bits
    /// rather than 8 (ISO/IEC 18004, Table 3).
    static let firstVersionWithLongByteCount = 10

    /// Length of byte mode's character count indicator (ISO/IEC 18004, Table 3).
    static func characterCountBits(version: Int) -> Int {
        version < firstVersionWithLongByteCount ? 8 : 16
    }

    /// Modules available for data and error correction codewords: everything
    /// but the function patterns and the format and version information
    /// (ISO/IEC 18004, Table 1, column "Data modules except (C)").
    static func rawDataModules(version: Int) -> Int {
        let size = QRCode.size(version: version)
        let finderPatternsWithSeparators = 3 * 8 * 8
        let timingPatterns = 2 * (size - 16)
        let formatInformationAndDarkModule = 2 * 15 + 1
        let versionInformation = version >= FormatInformation.firstVersionWithVersionInformation ? 2 * 18 : 0
        let centres = SymbolMatrix.alignmentPatternCentres(version: version).count
        // n × n alignment patterns less the three that would overlap finder
        // patterns; those in row 6 or column 6 share 5 modules with a timing pattern.
        let alignmentPatterns = centres == 0 ? 0 : 25 * (centres * centres - 3) - 2 * 5 * (centres - 2)
        return size * size - finderPatternsWithSeparators - timingPatterns
            - formatInformationAndDarkModule - versionInformation - alignmentPatterns
    }

    /// All codewords, data and error correction (ISO/IEC 18004, Table 1).
    static func totalCodewords(version: Int) -> Int {
        rawDataModules(version: version) / 8
    }

    /// Data codewords of a version and level (ISO/IEC 18004, Table 7).
    static func dataCodewordCount(version: Int, ecl: ErrorCorrection) -> Int {
        totalCodewords(version: version)
            - ecl.errorCorrectionBlockCount(version: version) * ecl.errorCorrectionCodewordsPerBlock(version: version)
    }

    /// The data codewords: mode indicator, character count, the bytes,
    /// terminator, zero bits to the codeword boundary, then pad codewords.
    /// `bytes` must fit (see ``QRCode/byteCapacity(version:ecl:)``).
    static func dataCodewords(_ bytes: [UInt8], version: Int, ecl: ErrorCorrection) -> [UInt8] {
        let capacity = dataCodewordCount(version: version, ecl: ecl)
        var bits = BitBuffer()
        bits.append(byteModeIndicator, count: modeIndicatorBits)
        bits.append(bytes.count, count: characterCountBits(version: version))
        for byte in bytes { bits.append(Int(byte), count: 8) }
        bits.append(0, count: min(terminatorBits, capacity * 8 - bits.count))
        bits.append(0, count: (8 - bits.count % 8) % 8)
        var codewords = bits.bytes
        var pad = 0
        while codewords.count < capacity {
            codewords.append(padCodewords[pad % padCodewords.count])
            pad += 1
        }
        return codewords
    }

    /// Splits the data codewords into blocks, appends each block's error
    /// correction codewords, and interleaves: the first data codeword of every
    /// block, then the second, …, then the error correction codewords likewise
    /// (ISO/IEC 18004, 7.6). Shorter blocks come first.
    static func interleavedCodewords(_ data: [UInt8], version: Int, ecl: ErrorCorrection) -> [UInt8] {
        let blockCount = ecl.errorCorrectionBlockCount(version: version)
        let ecPerBlock = ecl.errorCorrectionCodewordsPerBlock(version: version)
        let total = totalCodewords(version: version)
        let longBlockCount = total % blockCount
        let shortBlockDataCount = total / blockCount - ecPerBlock

        var dataBlocks: [[UInt8]] = []
        var ecBlocks: [[UInt8]] = []
        var start = 0
        for index in 0..<blockCount {
            let length = shortBlockDataCount + (index < blockCount - longBlockCount ? 0 : 1)
            let block = Array(data[start..<start + length])
            dataBlocks.append(block)
            ecBlocks.append(GaloisField.errorCorrectionCodewords(for: block, degree: ecPerBlock))
            start += length
        }

        var result: [UInt8] = []
        result.reserveCapacity(total)
        for column in 0...shortBlockDataCount {
            for block in dataBlocks where column < block.count {
                result.append(block[column])
            }
        }
        for column in 0..<ecPerBlock {
            for block in ecBlocks {
                result.append(block[column])
            }
        }
        return result
    }
}

/// A growing sequence of bits, most significant bit first within each byte.
struct BitBuffer {
    private(set) var bytes: [UInt8] = []
    private(set) var count = 0

    /// Appends the low `count` bits of `value`, most significant first.
    mutating func append(_ value: Int, count bitCount: Int) {
        for shift in stride(from: bitCount - 1, through: 0, by: -1) {
            if count % 8 == 0 { bytes.append(0) }
            if value >> shift & 1 == 1 {
                bytes[bytes.count - 1] |= 0x80 >> UInt8(count % 8)
            }
            count += 1
        }
    }
}
