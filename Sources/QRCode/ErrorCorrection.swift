/// The error correction level of a QR code symbol (ISO/IEC 18004, 6.5.1).
///
/// Higher levels recover more damage but hold less data. The approximate share
/// of codewords that can be restored is 7 % (L), 15 % (M), 25 % (Q) and 30 % (H).
public enum ErrorCorrection: Sendable, CaseIterable, Hashable {
    /// Level L, about 7 % recovery.
    case low
    /// Level M, about 15 % recovery (the default).
    case medium
    /// Level Q, about 25 % recovery.
    case quartile
    /// Level H, about 30 % recovery.
    case high

    /// The two error correction level bits of the format information
    /// (ISO/IEC 18004, Table 12): L = 01, M = 00, Q = 11, H = 10.
    var formatBits: Int {
        switch self {
        case .low: 0b01
        case .medium: 0b00
        case .quartile: 0b11
        case .high: 0b10
        }
    }

    /// Row of this level in the per-level tables below.
    private var tableIndex: Int {
        switch self {
        case .low: 0
        case .medium: 1
        case .quartile: 2
        case .high: 3
        }
    }

    /// Error correction codewords in each block for `version` (ISO/IEC 18004, Table 9).
    func errorCorrectionCodewordsPerBlock(version: Int) -> Int {
        Self.errorCorrectionCodewordsPerBlockTable[tableIndex][version - 1]
    }

    /// Number of error correction blocks for `version` (ISO/IEC 18004, Table 9).
    func errorCorrectionBlockCount(version: Int) -> Int {
        Self.errorCorrectionBlockCountTable[tableIndex][version - 1]
    }

    /// ISO/IEC 18004, Table 9: error correction codewords per block, by level
    /// (L, M, Q, H) and version 1...40. Within a version all blocks carry the
    /// same number of error correction codewords.
    static let errorCorrectionCodewordsPerBlockTable: [[Int]] = [
        [
            7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28,
            28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30
        ],
        [
            10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26,
            26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28
        ],
        [
            13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30,
            28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30
        ],
        [
            17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28,
            30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30
        ]
    ]

    /// ISO/IEC 18004, Table 9: number of error correction blocks, by level
    /// (L, M, Q, H) and version 1...40. Where the table lists two block sizes,
    /// the longer blocks hold one more data codeword than the shorter ones.
    static let errorCorrectionBlockCountTable: [[Int]] = [
        [
            1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8,
            8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25
        ],
        [
            1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16,
            17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49
        ],
        [
            1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20,
            23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68
        ],
        [
            1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25,
            25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81
        ]
    ]
}
