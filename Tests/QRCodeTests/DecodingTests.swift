import Foundation
import Testing
@testable import QRCode

/// Encodes, writes a PNG, and decodes it with zbarimg: the result must be
/// the input, byte for byte. Returns the code (nil when zbarimg is missing).
@discardableResult
func roundTrip(
    _ bytes: [UInt8], ecl: ErrorCorrection = .medium, forcedMask: Int? = nil, scale: Int = 3,
    sourceLocation: SourceLocation = #_sourceLocation
) throws -> QRCode? {
    guard Zbar.isAvailable(sourceLocation: sourceLocation) else { return nil }
    let code = try QRCode.encode(bytes, ecl: ecl, forcedMask: forcedMask)
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let file = directory.file("code.png")
    try Data(code.pngData(scale: scale)).write(to: file)
    let decoded = try Zbar.decode(file)
    #expect(
        decoded == bytes,
        "version \(code.version)-\(ecl) mask \(code.mask): decoded \(decoded.count) bytes, expected \(bytes.count)",
        sourceLocation: sourceLocation)
    return code
}

/// A tally invitation link of about 200 bytes, the kind of payload the codes carry.
let invitationLink: String = {
    let token = "3f9a1c0e7b2d4f6a8c0e1b3d5f7a9c2e"
    let chad = #"{"cid":"alice","agent":"P1Yb7Uq3Yz","host":"chips.example.org","port":65430}"#
    let encoded = chad.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? chad
    return "https://mychips.org/invite?token=\(token)&chad=\(encoded)"
}()

@Suite("Decoding with zbarimg")
struct DecodingTests {
    @Test func zbarimgIsInstalled() {
        #expect(
            FileManager.default.isExecutableFile(atPath: Zbar.path),
            "\(Zbar.path) is missing: install Debian's zbar-tools (CI does; the tests install nothing)")
    }

    @Test func shortText() throws {
        let code = try roundTrip(Array("chips".utf8))
        #expect(code?.version ?? 1 == 1)
    }

    @Test func invitationLinkDecodes() throws {
        try roundTrip(Array(invitationLink.utf8))
    }

    @Test func nonASCIIText() throws {
        let text = "Grüße aus Zürich — 1 CHIP = ½ h · 東京 · Ελλάδα · 🙂"
        try roundTrip(Array(text.utf8))
        // encode(String) takes the UTF-8 bytes.
        #expect(try QRCode.encode(text) == QRCode.encode(Array(text.utf8)))
    }

    @Test(arguments: [1000, 1500, 2000, 2331])
    func longPayloads(length: Int) throws {
        let link = Array(invitationLink.utf8)
        let bytes = (0..<length).map { link[$0 % link.count] }
        let code = try roundTrip(bytes, scale: 2)
        if length == 2331 { #expect(code?.version ?? 40 == 40) }
    }

    /// Every version at level M, filled to its capacity with arbitrary bytes
    /// (0x00 and bytes that are not UTF-8 included).
    @Test(arguments: 1...40)
    func everyVersionAtCapacity(version: Int) throws {
        let bytes = randomBytes(QRCode.byteCapacity(version: version, ecl: .medium), seed: UInt64(version))
        let code = try roundTrip(bytes, scale: version > 25 ? 2 : 3)
        #expect(code?.version ?? version == version)
    }

    /// Every error correction level at a few versions, including ones with
    /// blocks of two lengths.
    @Test(arguments: ErrorCorrection.allCases, [1, 5, 13, 27, 40])
    func everyLevel(ecl: ErrorCorrection, version: Int) throws {
        let bytes = randomBytes(QRCode.byteCapacity(version: version, ecl: ecl), seed: UInt64(version * 10))
        let code = try roundTrip(bytes, ecl: ecl, scale: 2)
        #expect(code?.version ?? version == version)
    }

    /// Each of the eight mask patterns, forced, through the real decoder,
    /// in versions without and with version information.
    @Test(arguments: 0..<QRCode.maskPatternCount, [1, 7, 22])
    func everyMask(mask: Int, version: Int) throws {
        let bytes = randomBytes(QRCode.byteCapacity(version: version, ecl: .medium), seed: UInt64(mask + 100))
        let code = try roundTrip(bytes, forcedMask: mask)
        #expect(code?.mask ?? mask == mask)
    }
}

extension DecodingTests {
    /// The terminal rendering, read back module by module and drawn as a
    /// PNG, decodes to the input: what a phone would see on the screen.
    @Test(arguments: TerminalBackground.allCases)
    func terminalRenderingDecodes(background: TerminalBackground) throws {
        guard Zbar.isAvailable() else { return }
        let bytes = Array(invitationLink.utf8)
        let code = try QRCode.encode(bytes)
        let quietZone = QRCode.quietZoneModules
        let ink = parseHalfBlocks(code.terminalString(background: background), rows: code.size + 2 * quietZone)
        let dark = ink.dropFirst(quietZone).prefix(code.size).flatMap { row in
            row.dropFirst(quietZone).prefix(code.size).map { background == .light ? $0 : !$0 }
        }
        let redrawn = QRCode(version: code.version, errorCorrection: code.errorCorrection, mask: code.mask, modules: dark)
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.file("terminal.png")
        try Data(redrawn.pngData(scale: 3)).write(to: file)
        #expect(try Zbar.decode(file) == bytes)
    }
}
