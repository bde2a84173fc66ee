import ChipChannel
import ChipModel
import Noise

// Fixed identities and real objects shared by the fuzz targets and the seed
// generator. Every key here is derived from a constant seed so that a seed
// file written by `seedgen` (for example an `I` frame addressed to the
// responder) is still meaningful to the targets in a later run.

/// A site identity built from a constant 32-byte seed.
struct FuzzSite {
    let key: SigningKey
    let agent: AgentID
    let local: LocalSite

    /// `fill` is repeated 32 times to make the Ed25519 seed.
    init(fill: UInt8) {
        guard let key = try? SigningKey(seed: [UInt8](repeating: fill, count: SigningKey.seedLength)),
            let agent = try? AgentID(publicKey: key.publicKey)
        else { fatalError("fixed fuzz key \(fill) is invalid") }
        var secret = key.curve25519SecretKey()
        defer { Crypto.wipe(&secret) }
        guard let staticKey = try? KeyPair(privateKey: secret) else { fatalError("fixed fuzz static key \(fill) is invalid") }
        self.key = key
        self.agent = agent
        self.local = LocalSite(agent: agent, staticKey: staticKey)
    }

    /// This site's user `cuid` as a CHAD on 127.0.0.1.
    func chad(_ cuid: String) -> CHAD {
        guard let c = try? CUID(cuid), let address = try? SiteAddress(host: "127.0.0.1", port: 65430) else {
            fatalError("fixed fuzz CHAD \(cuid) is invalid")
        }
        return CHAD(cuid: c, agent: agent, address: address)
    }
}

enum Fixed {
    /// The initiating site ("A", the peer of the responder).
    static let siteA = FuzzSite(fill: 0xA1)
    /// The responding site ("B", the local site of every responder target).
    static let siteB = FuzzSite(fill: 0xB2)
    /// A user key on each site.
    static let aliceKey = userKey(0xA5)
    static let bobKey = userKey(0xB5)
    static let date = "2026-11-24T21:00:00.000Z"
    static let tallyUUID = "5f0e3c1a-7b2d-4c8e-9f10-2a3b4c5d6e7f"
    static let chitUUID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"

    static func userKey(_ fill: UInt8) -> SigningKey {
        guard let key = try? SigningKey(seed: [UInt8](repeating: fill, count: SigningKey.seedLength)) else {
            fatalError("fixed fuzz user key \(fill) is invalid")
        }
        return key
    }

    static func certificate(_ chad: CHAD, _ name: String, _ key: SigningKey) -> Certificate {
        guard
            let cert = try? Certificate(
                chad: chad, type: .person, name: name, email: "\(chad.cuid)@example.org",
                publicKey: key.publicKey, date: date)
        else { fatalError("fixed fuzz certificate is invalid") }
        return cert
    }

    static let aliceCert = certificate(siteA.chad("alice"), "Alice Smith", aliceKey)
    static let bobCert = certificate(siteB.chad("bob"), "Bob Jones", bobKey)

    /// A tally between bob (stock, site B) and alice (foil, site A).
    static let tallyCore: TallyCore = {
        guard
            let core = try? TallyCore(
                uuid: tallyUUID, date: date, memo: "fuzz tally",
                stock: (cert: bobCert.json, terms: ["limit": 100_000]),
                foil: (cert: aliceCert.json, terms: ["limit": 50_000]))
        else { fatalError("fixed fuzz tally is invalid") }
        return core
    }()

    /// The tally object (core plus both signatures) as it travels.
    static var tallyObject: JSONValue {
        TallyObject.make(
            tallyCore,
            TallySignatures(
                stock: tallyCore.sign(with: bobKey), foil: tallyCore.sign(with: aliceKey),
                hash: tallyCore.hash))
    }

    /// A payment of 12.345 CHIPs by alice (the foil) on the tally.
    static var chit: Chit {
        guard
            let chit = try? Chit(
                tally: tallyUUID, by: .foil, uuid: chitUUID, date: date, units: 12_345,
                memo: "lunch", ref: ["invoice": 7], key: aliceKey)
        else { fatalError("fixed fuzz chit is invalid") }
        return chit
    }

    /// The ticket message alice's site sends in the `I` handshake to bob's.
    static var ticketMessage: JSONValue {
        [
            "target": "tally", "action": "ticket", "to": siteB.chad("bob").json, "from": siteA.chad("alice").json,
            "ticket": ["token": .string(String(repeating: "5e", count: 16)), "cert": aliceCert.json]
        ]
    }
}

/// The input as an array (most entry points take `[UInt8]`).
@inline(__always)
func bytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Stops the fuzzer with a message: a violated property, reported as a crash
/// at the caller's file and line.
func violated(_ what: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    fatalError("fuzz property violated: \(what)", file: file, line: line)
}
