import Testing
@testable import QRCode
@Test func placeholder() { #expect(Bool(true)) }
