import Foundation

/// The repository root, found from this source file's path (Tests/NoiseTests/…).
let repoRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Where the shared Noise vectors live: `<repo>/../shared/vectors/noise`.
let vectorsDirectory: URL = repoRoot.deletingLastPathComponent()
    .appendingPathComponent("shared/vectors/noise", isDirectory: true)

struct HexError: Error, CustomStringConvertible {
    let text: String
    var description: String { "bad hex: \(text.prefix(40))" }
}

func hex(_ s: String) throws -> [UInt8] {
    let chars = Array(s.utf8)
    guard chars.count % 2 == 0 else { throw HexError(text: s) }
    var out = [UInt8]()
    out.reserveCapacity(chars.count / 2)
    func nibble(_ c: UInt8) throws -> UInt8 {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        case 65...70: return c - 55
        default: throw HexError(text: s)
        }
    }
    var i = 0
    while i < chars.count {
        out.append(try nibble(chars[i]) << 4 | nibble(chars[i + 1]))
        i += 2
    }
    return out
}

func hex(_ b: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(b.count * 2)
    for x in b { out.append(digits[Int(x >> 4)]); out.append(digits[Int(x & 15)]) }
    return String(decoding: out, as: UTF8.self)
}

/// Deterministic test payload: `(seed + j) % 251` for j in 0..<count (same in the Python peer).
func pattern(_ count: Int, seed: Int) -> [UInt8] {
    (0..<count).map { UInt8((seed + $0) % 251) }
}
