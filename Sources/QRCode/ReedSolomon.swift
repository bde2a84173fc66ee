/// Arithmetic in GF(2^8) with the QR code's field generator polynomial
/// x^8 + x^4 + x^3 + x^2 + 1 (ISO/IEC 18004, 7.5.2), and the Reed-Solomon
/// error correction codewords computed from it.
enum GaloisField {
    /// The field generator polynomial x^8 + x^4 + x^3 + x^2 + 1 as bits (0x11D).
    static let primitivePolynomial = 0x11D

    /// `exponents[i]` = α^i for i in 0..<255 (α = 2), repeated once so that
    /// sums of two logarithms index it without a modulo.
    static let exponents: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 510)
        var value = 1
        for i in 0..<255 {
            table[i] = UInt8(value)
            table[i + 255] = UInt8(value)
            value <<= 1
            if value & 0x100 != 0 { value ^= primitivePolynomial }
        }
        return table
    }()

    /// `logarithms[v]` = i with α^i = v, for v in 1...255 (index 0 unused).
    static let logarithms: [Int] = {
        var table = [Int](repeating: 0, count: 256)
        for i in 0..<255 { table[Int(exponents[i])] = i }
        return table
    }()

    /// The product of two field elements.
    static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        if a == 0 || b == 0 { return 0 }
        return exponents[logarithms[Int(a)] + logarithms[Int(b)]]
    }

    /// The generator polynomial (x - α^0)(x - α^1)…(x - α^(degree-1)) of a
    /// Reed-Solomon code with `degree` error correction codewords
    /// (ISO/IEC 18004, Annex A). Coefficients from the highest power down,
    /// the leading coefficient 1 included.
    static func generatorPolynomial(degree: Int) -> [UInt8] {
        var polynomial: [UInt8] = [1]
        for i in 0..<degree {
            // Multiply by (x + α^i); subtraction is addition (XOR) in GF(2^8).
            let root = exponents[i]
            var next = [UInt8](repeating: 0, count: polynomial.count + 1)
            for (j, coefficient) in polynomial.enumerated() {
                next[j] ^= coefficient
                next[j + 1] ^= multiply(coefficient, root)
            }
            polynomial = next
        }
        return polynomial
    }

    /// The `degree` error correction codewords for `data`: the remainder of
    /// data(x)·x^degree divided by the generator polynomial.
    static func errorCorrectionCodewords(for data: [UInt8], degree: Int) -> [UInt8] {
        // Long division, keeping only the remainder; the generator's
        // coefficients are taken as logarithms so each step is a table look-up.
        let generatorLogarithms = generatorPolynomial(degree: degree).dropFirst().map { logarithms[Int($0)] }
        var remainder = [UInt8](repeating: 0, count: degree)
        for byte in data {
            let factor = byte ^ remainder[0]
            for j in 0..<(degree - 1) { remainder[j] = remainder[j + 1] }
            remainder[degree - 1] = 0
            guard factor != 0 else { continue }
            let factorLogarithm = logarithms[Int(factor)]
            for j in 0..<degree {
                // Generator coefficients are never zero (its roots are distinct).
                remainder[j] ^= exponents[generatorLogarithms[j] + factorLogarithm]
            }
        }
        return remainder
    }
}
