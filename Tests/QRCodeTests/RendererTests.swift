import Foundation
#if canImport(FoundationXML)
    import FoundationXML
#endif
import CZlib
import Testing
@testable import QRCode

/// Parses a half block rendering back into rows of ink (`true` = drawn);
/// `rows` drops the blank lower half of an odd last line.
func parseHalfBlocks(_ text: String, rows: Int) -> [[Bool]] {
    var ink: [[Bool]] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
        var upper: [Bool] = [], lower: [Bool] = []
        for character in line {
            upper.append(character == "\u{2580}" || character == "\u{2588}")
            lower.append(character == "\u{2584}" || character == "\u{2588}")
        }
        ink.append(upper)
        ink.append(lower)
    }
    return Array(ink.prefix(rows))
}

/// The symbol with a quiet zone as rows of `true` = dark.
func darkMatrix(_ code: QRCode, quietZone: Int) -> [[Bool]] {
    (-quietZone..<(code.size + quietZone)).map { y in
        (-quietZone..<(code.size + quietZone)).map { x in code.isDark(x: x, y: y) }
    }
}

@Suite("Renderers")
struct RendererTests {
    @Test(arguments: TerminalBackground.allCases, [0, 1, 4])
    func terminalRoundTrip(background: TerminalBackground, quietZone: Int) throws {
        let code = try QRCode.encode(invitationLink)
        let text = code.terminalString(background: background, quietZone: quietZone)
        let across = code.size + 2 * quietZone
        let lines = text.split(separator: "\n")
        #expect(lines.count == (across + 1) / 2)
        #expect(lines.allSatisfy { $0.count == across })
        #expect(text.allSatisfy { " \u{2580}\u{2584}\u{2588}\n".contains($0) })
        let ink = parseHalfBlocks(text, rows: across)
        let expected = darkMatrix(code, quietZone: quietZone).map { row in
            row.map { background == .light ? $0 : !$0 }
        }
        #expect(ink == expected)
    }

    /// QR symbols always have an odd side; the half block writer itself is
    /// checked on odd and even matrices, and on an odd one's blank last half.
    @Test(arguments: [(1, 1), (2, 3), (4, 4), (7, 5), (10, 21)])
    func halfBlocksOddAndEven(rows: Int, columns: Int) {
        var random = SeededRandom(seed: UInt64(rows * 100 + columns))
        let ink = (0..<rows).map { _ in (0..<columns).map { _ in Bool.random(using: &random) } }
        let text = HalfBlocks.render(ink)
        #expect(text.split(separator: "\n").count == (rows + 1) / 2)
        #expect(parseHalfBlocks(text, rows: rows) == ink)
        if rows % 2 == 1 {
            #expect(parseHalfBlocks(text, rows: rows + 1).last == Array(repeating: false, count: columns))
        }
    }

    @Test func halfBlockCharacters() {
        #expect(HalfBlocks.render([[true, true, false, false], [true, false, true, false]]) == "█▀▄ \n")
    }

    @Test func pngStructure() throws {
        let code = try QRCode.encode("png")
        let png = code.pngData(scale: 5, quietZone: 2)
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        // IHDR: length 13, then width and height (21 + 4) × 5 = 125.
        #expect(Array(png[8..<16]) == [0, 0, 0, 13] + Array("IHDR".utf8))
        #expect(Array(png[16..<24]) == [0, 0, 0, 125, 0, 0, 0, 125])
        #expect(Array(png[24..<29]) == [1, 0, 0, 0, 0])
        // The CRC-32 of "IEND" is AE 42 60 82.
        #expect(Array(png.suffix(12)) == [0, 0, 0, 0] + Array("IEND".utf8) + [0xAE, 0x42, 0x60, 0x82])
    }

    /// The stored-block fallback is a valid zlib stream that zlib inflates.
    @Test func storedZlibStream() {
        let raw = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let stream = PNG.storedZlibStream(raw)
        #expect(stream.count == raw.count + 2 + 2 * 5 + 4)
        var inflated = [UInt8](repeating: 0, count: raw.count + 1)
        var length = uLongf(inflated.count)
        let status = inflated.withUnsafeMutableBufferPointer { out in
            stream.withUnsafeBufferPointer { uncompress(out.baseAddress, &length, $0.baseAddress, uLong($0.count)) }
        }
        #expect(status == Z_OK)
        #expect(Array(inflated.prefix(Int(length))) == raw)
    }

    /// The PNG's IDAT inflates to one filter byte plus packed pixels per row.
    @Test func pngPixels() throws {
        let code = try QRCode.encode("pixels")
        let scale = 2, quietZone = 4
        let png = code.pngData(scale: scale, quietZone: quietZone)
        let idatLength = Int(png[33]) << 24 | Int(png[34]) << 16 | Int(png[35]) << 8 | Int(png[36])
        #expect(Array(png[37..<41]) == Array("IDAT".utf8))
        let idat = Array(png[41..<(41 + idatLength)])
        let pixels = (code.size + 2 * quietZone) * scale
        let rowBytes = (pixels + 7) / 8
        var raw = [UInt8](repeating: 0, count: pixels * (rowBytes + 1))
        var length = uLongf(raw.count)
        let status = raw.withUnsafeMutableBufferPointer { out in
            idat.withUnsafeBufferPointer { uncompress(out.baseAddress, &length, $0.baseAddress, uLong($0.count)) }
        }
        #expect(status == Z_OK && Int(length) == raw.count)
        for py in 0..<pixels {
            #expect(raw[py * (rowBytes + 1)] == 0, "filter type None")
            for px in 0..<pixels {
                let byte = raw[py * (rowBytes + 1) + 1 + px / 8]
                let white = byte & (0x80 >> UInt8(px % 8)) != 0
                #expect(white == !code.isDark(x: px / scale - quietZone, y: py / scale - quietZone))
            }
        }
    }

    @Test func svgCoversExactlyTheDarkModules() throws {
        let code = try QRCode.encode(invitationLink)
        let quietZone = 4
        let svg = code.svgString(moduleSize: 3, quietZone: quietZone)
        let across = code.size + 2 * quietZone

        let parser = XMLParser(data: Data(svg.utf8))
        let collector = SVGCollector()
        parser.delegate = collector
        #expect(parser.parse(), "not well-formed: \(String(describing: parser.parserError))")
        #expect(collector.elements == ["svg", "rect", "path"])
        let root = collector.attributes["svg"] ?? [:]
        #expect(root["xmlns"] == "http://www.w3.org/2000/svg")
        #expect(root["viewBox"] == "0 0 \(across) \(across)")
        #expect(root["width"] == "\(3 * across)")
        #expect(collector.attributes["rect"]?["fill"] == "#fff")
        #expect(collector.attributes["path"]?["fill"] == "#000")

        // Rasterize the path's rectangles ("Mx yhNv1h-Nz") and compare.
        var painted = Array(repeating: Array(repeating: false, count: across), count: across)
        let path = collector.attributes["path"]?["d"] ?? ""
        for command in path.split(separator: "z") {
            let scanner = Scanner(string: String(command))
            var x = 0, y = 0, run = 0, back = 0
            let ok =
                scanner.scanString("M") != nil && scanner.scanInt(&x) && scanner.scanInt(&y)
                && scanner.scanString("h") != nil && scanner.scanInt(&run)
                && scanner.scanString("v1h") != nil && scanner.scanInt(&back) && scanner.isAtEnd
            #expect(ok && back == -run, "unexpected path command \(command)")
            for column in x..<(x + max(run, 0)) {
                #expect(!painted[y][column], "overlap at \(column),\(y)")
                painted[y][column] = true
            }
        }
        #expect(painted == darkMatrix(code, quietZone: quietZone))
    }
}

/// Records element names and attributes of a small XML document.
final class SVGCollector: NSObject, XMLParserDelegate {
    var elements: [String] = []
    var attributes: [String: [String: String]] = [:]

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
        qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
    ) {
        elements.append(elementName)
        attributes[elementName] = attributeDict
    }
}
