/// A token of a handshake pattern (spec §7.1). PSK modifiers are not supported.
public enum Token: String, Sendable, Hashable {
    case e, s, ee, es, se, ss
}

/// A handshake pattern as data: pre-message token lists and the message
/// sequence, exactly as written in the spec. Messages alternate, starting with
/// the initiator (`->`), then the responder (`<-`).
public struct HandshakePattern: Sendable, Hashable {
    /// The pattern's name as used in protocol names ("IK", "XX", ...).
    public let name: String
    /// Tokens of the initiator's pre-message (`-> s` above the `...`).
    public let initiatorPreMessage: [Token]
    /// Tokens of the responder's pre-message (`<- s` above the `...`).
    public let responderPreMessage: [Token]
    /// The handshake messages, in order; even indices are the initiator's.
    public let messages: [[Token]]

    /// Builds a pattern from the spec's token lists.
    public init(
        name: String, initiatorPreMessage: [Token] = [], responderPreMessage: [Token] = [],
        messages: [[Token]]
    ) {
        self.name = name
        self.initiatorPreMessage = initiatorPreMessage
        self.responderPreMessage = responderPreMessage
        self.messages = messages
    }

    /// One-way patterns (§7.4) have a single message; only the initiator sends.
    public var isOneWay: Bool { messages.count == 1 }

    // MARK: The spec's patterns (§7.4 one-way, §7.5 interactive fundamental)

    /// `N`:  `<- s` / `...` / `-> e, es`
    public static let N = HandshakePattern(
        name: "N", responderPreMessage: [.s],
        messages: [
            [.e, .es]
        ])
    /// `K`:  `-> s` `<- s` / `...` / `-> e, es, ss`
    public static let K = HandshakePattern(
        name: "K", initiatorPreMessage: [.s], responderPreMessage: [.s],
        messages: [
            [.e, .es, .ss]
        ])
    /// `X`:  `<- s` / `...` / `-> e, es, s, ss`
    public static let X = HandshakePattern(
        name: "X", responderPreMessage: [.s],
        messages: [
            [.e, .es, .s, .ss]
        ])
    /// `NN`: `-> e` / `<- e, ee`
    public static let NN = HandshakePattern(
        name: "NN",
        messages: [
            [.e],
            [.e, .ee]
        ])
    /// `NK`: `<- s` / `...` / `-> e, es` / `<- e, ee`
    public static let NK = HandshakePattern(
        name: "NK", responderPreMessage: [.s],
        messages: [
            [.e, .es],
            [.e, .ee]
        ])
    /// `NX`: `-> e` / `<- e, ee, s, es`
    public static let NX = HandshakePattern(
        name: "NX",
        messages: [
            [.e],
            [.e, .ee, .s, .es]
        ])
    /// `KN`: `-> s` / `...` / `-> e` / `<- e, ee, se`
    public static let KN = HandshakePattern(
        name: "KN", initiatorPreMessage: [.s],
        messages: [
            [.e],
            [.e, .ee, .se]
        ])
    /// `KK`: `-> s` `<- s` / `...` / `-> e, es, ss` / `<- e, ee, se`
    public static let KK = HandshakePattern(
        name: "KK", initiatorPreMessage: [.s], responderPreMessage: [.s],
        messages: [
            [.e, .es, .ss],
            [.e, .ee, .se]
        ])
    /// `KX`: `-> s` / `...` / `-> e` / `<- e, ee, se, s, es`
    public static let KX = HandshakePattern(
        name: "KX", initiatorPreMessage: [.s],
        messages: [
            [.e],
            [.e, .ee, .se, .s, .es]
        ])
    /// `XN`: `-> e` / `<- e, ee` / `-> s, se`
    public static let XN = HandshakePattern(
        name: "XN",
        messages: [
            [.e],
            [.e, .ee],
            [.s, .se]
        ])
    /// `XK`: `<- s` / `...` / `-> e, es` / `<- e, ee` / `-> s, se`
    public static let XK = HandshakePattern(
        name: "XK", responderPreMessage: [.s],
        messages: [
            [.e, .es],
            [.e, .ee],
            [.s, .se]
        ])
    /// `XX`: `-> e` / `<- e, ee, s, es` / `-> s, se`
    public static let XX = HandshakePattern(
        name: "XX",
        messages: [
            [.e],
            [.e, .ee, .s, .es],
            [.s, .se]
        ])
    /// `IN`: `-> e, s` / `<- e, ee, se`
    public static let IN = HandshakePattern(
        name: "IN",
        messages: [
            [.e, .s],
            [.e, .ee, .se]
        ])
    /// `IK`: `<- s` / `...` / `-> e, es, s, ss` / `<- e, ee, se`
    public static let IK = HandshakePattern(
        name: "IK", responderPreMessage: [.s],
        messages: [
            [.e, .es, .s, .ss],
            [.e, .ee, .se]
        ])
    /// `IX`: `-> e, s` / `<- e, ee, se, s, es`
    public static let IX = HandshakePattern(
        name: "IX",
        messages: [
            [.e, .s],
            [.e, .ee, .se, .s, .es]
        ])

    /// Every pattern in the table.
    public static let all: [HandshakePattern] = [N, K, X, NN, NK, NX, KN, KK, KX, XN, XK, XX, IN, IK, IX]

    /// The pattern with this name, if the table has it.
    public static func named(_ name: String) -> HandshakePattern? {
        all.first { $0.name == name }
    }
}

/// A parsed protocol name `Noise_<pattern>_25519_ChaChaPoly_<hash>` (spec §8).
/// Only DH 25519 and cipher ChaChaPoly are supported.
public struct NoiseProtocol: Sendable, Hashable {
    /// The handshake pattern.
    public let pattern: HandshakePattern
    /// The hash function.
    public let hash: NoiseHash

    /// The full protocol name, as mixed into the handshake hash.
    public var name: String { "Noise_\(pattern.name)_25519_ChaChaPoly_\(hash.name)" }

    /// A protocol from its parts.
    public init(pattern: HandshakePattern, hash: NoiseHash = .blake2b) {
        self.pattern = pattern
        self.hash = hash
    }

    /// Parses e.g. `"Noise_IK_25519_ChaChaPoly_BLAKE2b"`.
    public init(name: String) throws(NoiseError) {
        let parts = name.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "Noise", parts[2] == "25519", parts[3] == "ChaChaPoly",
            let pattern = HandshakePattern.named(String(parts[1])),
            let hash = NoiseHash(rawValue: String(parts[4]))
        else { throw .unsupportedProtocol(name) }
        self.init(pattern: pattern, hash: hash)
    }
}
