import Testing
@testable import ChipModel

@Suite struct CanonicalJSONTests {
    @Test func keysSortByUTF16CodeUnitsNotBytes() throws {
        // U+FF61 sorts before U+1F600 by scalar/byte order, but after it by
        // UTF-16 code units (0xFF61 > 0xD83D), which is how JavaScript sorts.
        let halfwidth = "\u{FF61}", emoji = "\u{1F600}"
        #expect(Array(halfwidth.utf8).lexicographicallyPrecedes(Array(emoji.utf8)))
        let value: JSONValue = .object([halfwidth: 1, emoji: 2, "a": 3, "B": 4])
        #expect(value.canonicalString == "{\"B\":4,\"a\":3,\"\(emoji)\":2,\"\(halfwidth)\":1}")
    }

    @Test func escapesExactlyAsJSONStringify() {
        let s: JSONValue = .string("q\"b\\s/\u{8}\u{c}\n\r\t\u{1}\u{1f}é€😀\u{7f}\u{2028}")
        #expect(s.canonicalString == #""q\"b\\s/\b\f\n\r\t\u0001\u001fé€😀"# + "\u{7f}\u{2028}\"")
    }

    @Test func noWhitespaceAndNestedOrder() throws {
        let v = try JSONValue(parsing: #" { "z" : [ 1 , { "b" : null , "a" : true } ] , "y" : -7 } "#)
        #expect(v.canonicalString == #"{"y":-7,"z":[1,{"a":true,"b":null}]}"#)
    }

    @Test func integersOnly() throws {
        // Exactly the integers a JavaScript site reads exactly: ±(2^53 - 1).
        #expect(try JSONValue(parsing: "9007199254740991") == .integer(9_007_199_254_740_991))
        #expect(try JSONValue(parsing: "-9007199254740991") == .integer(-9_007_199_254_740_991))
        #expect(try JSONValue(parsing: "-0") == .integer(0))
        for bad in [
            "1.5", "1e3", "2E1", "9007199254740992", "-9007199254740992", "9223372036854775807", "-9223372036854775808",
            "9223372036854775808", "-9223372036854775809", "01", "-", "+1", "NaN", "Infinity"
        ] {
            #expect(throws: ModelError.self, "\(bad)") { try JSONValue(parsing: bad) }
        }
    }

    @Test func refusesMalformedInput() {
        let bad: [[UInt8]] = [
            Array("{\"a\":1,\"a\":2}".utf8),  // duplicate key
            Array("[1,]".utf8), Array("{\"a\":1,}".utf8), Array("[1] x".utf8), Array("".utf8),
            Array("\"\\ud800\"".utf8), Array("\"\\udc00\"".utf8), Array("\"\\ud800\\u0041\"".utf8),
            Array("\"a\u{1}b\"".utf8), Array("\"\\x\"".utf8), Array("'a'".utf8), Array("tru".utf8),
            [0x22, 0xFF, 0x22],  // invalid UTF-8
            Array("\"unterminated".utf8), Array("{\"a\" 1}".utf8), Array("// c\n1".utf8)
        ]
        for input in bad {
            #expect(throws: ModelError.self, "\(String(decoding: input, as: UTF8.self))") { try JSONValue(parsing: input) }
        }
    }

    @Test func depthAndSizeLimits() throws {
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: ModelError.self) { try JSONValue(parsing: deep) }
        let ok = String(repeating: "[", count: 10) + String(repeating: "]", count: 10)
        _ = try JSONValue(parsing: ok)
        #expect(throws: ModelError.self) {
            try JSONValue(parsing: "[1,2,3]", limits: JSONLimits(maxDepth: 8, maxBytes: 4))
        }
    }

    @Test func surrogatePairsAndEscapesDecode() throws {
        #expect(try JSONValue(parsing: #""\ud83d\ude00 \u00e9 \/""#) == .string("😀 é /"))
    }

    @Test func canonicalFormRoundTrips() throws {
        let v: JSONValue = ["k\u{0}": ["x", nil, false, -1, ["é": [:]]], "": []]
        let again = try JSONValue(parsing: v.canonicalBytes)
        #expect(again == v)
        #expect(again.canonicalBytes == v.canonicalBytes)
        #expect(try JSONValue(parsing: v.prettyString) == v)
    }
}

@Suite struct EncodingTests {
    @Test func base64urlRFC4648Vectors() {
        let vectors = ["": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
            #expect(Base64URL.decode(encoded) == Array(plain.utf8))
        }
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
    }

    @Test func base64urlIsStrict() {
        for bad in ["Zg==", "Zh", "Z", "Zm9v+", "Zm 9v", "Zm9/"] { #expect(Base64URL.decode(bad) == nil, "\(bad)") }
    }

    @Test func hexRoundTrip() {
        #expect(Hex.encode([0, 0xAB, 0xFF]) == "00abff")
        #expect(Hex.decode("00ABff") == [0, 0xAB, 0xFF])
        #expect(Hex.decode("0") == nil)
        #expect(Hex.decode("zz") == nil)
    }

    @Test func equalityIsByteEqualityNotUnicodeEquivalence() throws {
        // A Kelvin sign looks like K and is canonically equivalent to it for
        // Swift's String ==, but its bytes (and every hash over them) differ.
        let kelvin: JSONValue = .string("O\u{212A}P"), k: JSONValue = .string("OKP")
        #expect(kelvin != k)
        #expect(JSONValue.object(["kty": kelvin]) != JSONValue.object(["kty": k]))
        let composed: JSONValue = .string("caf\u{E9}"), decomposed: JSONValue = .string("cafe\u{301}")
        #expect(composed != decomposed && Set([composed, decomposed]).count == 2)
        #expect(try JSONValue(parsing: #"{"a":[1,"x"]}"#) == JSONValue.object(["a": [1, "x"]]))
    }
}
