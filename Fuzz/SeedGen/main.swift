import ChipChannel
import ChipModel
import ChipProtocol
import Foundation
import Noise

// seedgen: writes the seed corpus Fuzz/corpus/<target>/ from real objects
// (the fixed sites, users, tally and chit of FuzzSupport.swift) and real
// frames from a real handshake between the fixed sites. Run it through
// `bash packaging/fuzz.sh --seeds`. Files are rewritten, never deleted.

/// Writes one seed file, `<root>/<target>/<name>`.
func seed(_ root: String, _ target: String, _ name: String, _ bytes: [UInt8]) throws {
    let dir = URL(fileURLWithPath: root).appendingPathComponent(target)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try Data(bytes).write(to: dir.appendingPathComponent(name))
}

func frames(_ actions: [ChannelAction]) -> [Frame] {
    actions.compactMap { if case .send(let f) = $0 { return f } else { return nil } }
}

let root = CommandLine.arguments.dropFirst().first ?? "Fuzz/corpus"
let a = Fixed.siteA, b = Fixed.siteB
let alice = a.chad("alice"), bob = b.chad("bob")

// Messages from site A (alice) to site B (bob), as the stores build them.
let tallyMessage: JSONValue = ["target": "tally", "action": "offer", "to": bob.json, "from": alice.json, "object": Fixed.tallyObject]
let chitMessage: JSONValue = [
    "target": "chit", "action": "tran", "to": bob.json, "from": alice.json,
    "object": ["tally": .string(Fixed.tallyUUID), "chits": [Fixed.chit.json]]
]
let ticket = try TallyTicket(token: String(repeating: "5e", count: 16), expires: "2026-12-01T00:00:00.000Z", chad: bob)

// A real first contact (IK) and a real later contact (N then KK).
var (initiator, out) = try ChannelMachine.firstContact(local: a.local, remote: b.agent, ticketMessage: Fixed.ticketMessage)
let iFrame = frames(out)[0]
var responder = ChannelMachine.responder(local: b.local)
_ = responder.receive(iFrame)
let aFrame = frames(responder.answer(true))[0]
_ = initiator.receive(aFrame)
let tFrames = try [tallyMessage, chitMessage].flatMap { m throws(ChannelError) in frames(try initiator.send(m)) }
let (_, later) = try ChannelMachine.laterContact(local: a.local, remote: b.agent)
let nFrame = frames(later)[0], kFrame = frames(later)[1]

// frame: control byte 0 (64 KiB limit, one chunk) or with chunk sizes.
try seed(root, "frame", "ik-a-t", [0x00] + ([iFrame, aFrame] + tFrames).flatMap(\.encoded))
try seed(root, "frame", "n-k-chunked", [0x0C, 0, 16, 200] + [nFrame, kFrame].flatMap(\.encoded))
try seed(root, "frame", "t-limit-1024", [0x07, 3] + tFrames.flatMap(\.encoded))
try seed(root, "frame", "bad-header", [0x00, 0, 0, 0, 17, UInt8(ascii: "X")] + [UInt8](repeating: 0, count: 16))

// handshake: selector 0 IK, 1 N, 2 KK.
try seed(root, "handshake", "ik-message-1", [0] + iFrame.body)
try seed(root, "handshake", "n-message-1", [1] + nFrame.body)
try seed(root, "handshake", "kk-message-1", [2] + kFrame.body)
try seed(root, "handshake", "ik-short", [0] + iFrame.body.prefix(95))

// channel: answers byte, then the peer's byte stream.
try seed(root, "channel", "ik-accepted", [0xFF] + ([iFrame] + tFrames).flatMap(\.encoded))
try seed(root, "channel", "ik-refused", [0x00] + iFrame.encoded)
try seed(root, "channel", "n-kk-accepted", [0xFF] + ([nFrame, kFrame] + tFrames).flatMap(\.encoded))
try seed(root, "channel", "t-before-open", [0xFF] + tFrames[0].encoded)

// transport: op byte (bit 0 rekey, bit 1 round trip, bit 2 pad to the limit).
try seed(root, "transport", "t-body", [0x00] + tFrames[0].body)
try seed(root, "transport", "round-trip", [0x02] + chitMessage.canonicalBytes)
try seed(root, "transport", "rekey-round-trip", [0x03] + Array("{}".utf8))
try seed(root, "transport", "near-limit", [0x06, 19])

// JSON messages, for envelope, json, canonical, tally, chit.
let messages: [(String, JSONValue)] = [("ticket-message", Fixed.ticketMessage), ("tally-offer", tallyMessage), ("chit-tran", chitMessage)]
for (name, m) in messages {
    try seed(root, "envelope", name, m.canonicalBytes)
    try seed(root, "json", name, m.canonicalBytes)
}
try seed(root, "json", "pretty-escapes", Array(#"{"s": "a\u00e9\ud83d\ude00\n\"\\", "n": [-9223372036854775808, 0, null, true, false]}"#.utf8))
try seed(root, "canonical", "ticket-message", Fixed.ticketMessage.canonicalBytes)
try seed(root, "canonical", "tally-offer-pretty", Array(tallyMessage.prettyString.utf8))
try seed(root, "canonical", "escapes", Array(#"{"\u0001":"\u001f\/","b":{"é":[1,-2]},"\ud800\udc00":"","￿":0}"#.utf8))

// ticket: the JSON form, the link, the text as pasted.
try seed(root, "ticket", "json", ticket.json.canonicalBytes)
try seed(root, "ticket", "link", Array(ticket.link.utf8))
try seed(root, "ticket", "pretty-padded", Array(("\n  " + ticket.json.prettyString + "\n").utf8))
try seed(root, "ticket_message", "ticket-message", Fixed.ticketMessage.canonicalBytes)

// tally, chit, certificate, chad.
try seed(root, "tally", "offer-message", tallyMessage.canonicalBytes)
try seed(root, "tally", "object", Fixed.tallyObject.canonicalBytes)
try seed(root, "tally", "core", Fixed.tallyCore.canonicalBytes)
try seed(root, "chit", "tran-message", chitMessage.canonicalBytes)
try seed(root, "chit", "chit", Fixed.chit.json.canonicalBytes)
try seed(root, "certificate", "alice", Fixed.aliceCert.json.canonicalBytes)
try seed(
    root, "certificate", "bob-name-parts",
    Array(
        #"{"chad":\#(bob.json.canonicalString),"type":"o","name":{"first":"Bob","surname":"Jones"},"public":\#(UserKeyJWK.json(publicKey: Fixed.bobKey.publicKey).canonicalString),"date":"\#(Fixed.date)"}"#
            .utf8))
try seed(root, "chad", "json", bob.json.canonicalBytes)
try seed(root, "chad", "text", Array(alice.description.utf8))
try seed(root, "chad", "text-ipv6", Array("alice:\(a.agent)@[::1]:65430".utf8))
// user_channel: control byte (bit 0 the answer, bit 7 the mode), then the device's
// byte stream (mode 0) or 0x00-separated request plaintexts behind a real session (mode 1).
let device = try KeyPair(privateKey: [UInt8](repeating: 0xD1, count: 32))
let userTicket = try UserTicket(
    address: SiteAddress(host: "127.0.0.1", port: UserPortDefaults.defaultPort), agent: b.agent,
    user: CUID("alice"), token: String(repeating: "d1", count: 16), expires: nil)
let (_, registerOut) = try UserChannelMachine.register(device: device, ticket: userTicket, deviceName: "Pixel 7")
let (sessionClient, sessionOut) = try UserChannelMachine.session(device: device, site: b.agent)
var userClient = sessionClient
var userSite = UserChannelMachine.responder(local: b.local)
func userFrames(_ actions: [UserChannelAction]) -> [Frame] {
    actions.compactMap { if case .send(let f) = $0 { return f } else { return nil } }
}
let registerI = userFrames(registerOut)[0], sessionI = userFrames(sessionOut)[0]
_ = userSite.receive(sessionI)
guard let seedAlice = try? CUID("alice") else { fatalError("alice") }
let userA = userFrames(userSite.answerSession(UserSessionGrant(user: seedAlice, custody: .site, scopes: Set(UserScope.allCases))))[0]
_ = userClient.receive(userA)
let userT = try userFrames(userClient.send(["id": "1", "cmd": "ping"]))
try seed(root, "user_channel", "register", [0x01] + registerI.encoded)
try seed(root, "user_channel", "register-refused", [0x00] + registerI.encoded)
try seed(root, "user_channel", "session-t", [0x01] + ([sessionI] + userT).flatMap(\.encoded))
try seed(root, "user_channel", "second-i", [0x01] + [sessionI, sessionI].flatMap(\.encoded))
try seed(root, "user_channel", "t-before-i", [0x01] + userT.flatMap(\.encoded))
try seed(root, "user_channel", "peer-ik", [0x01] + iFrame.encoded)
try seed(root, "user_channel", "peer-n-k", [0x01] + [nFrame, kFrame].flatMap(\.encoded))
let plaintexts = [#"{"id":"1","cmd":"ping"}"#, #"{"id":"2","cmd":"chit.request","args":{"units":1.5}}"#, #"{"id":"3","id":"4"}"#]
try seed(root, "user_channel", "session-requests", [0x81] + Array(plaintexts.joined(separator: "\u{0}").utf8))
try seed(root, "user_channel", "session-deep", [0x81] + Array((String(repeating: "[", count: 40) + String(repeating: "]", count: 40)).utf8))

// user_command: one request per command of 10.6, and a few refusals.
let u1 = Fixed.tallyUUID, u2 = Fixed.chitUUID
let sig86 = Base64URL.encode([UInt8](repeating: 7, count: 64)), digest = Base64URL.encode(Crypto.sha256([1]))
let deviceText = Base64URL.encode(device.publicKey)
let commandArgs: [(String, JSONValue)] = [
    ("ping", [:]), ("me.show", [:]),
    (
        "me.signkey",
        [
            "key": [
                "agent": .string(b.agent.description), "cuid": "alice", "public": UserKeyJWK.json(publicKey: Fixed.aliceKey.publicKey),
                "date": .string(Fixed.date)
            ], "sign": .string(sig86)
        ]
    ),
    ("me.key.take", ["step": "fetch"]),
    (
        "me.key.take",
        [
            "step": "confirm", "proof": ["act": "key.take", "cuid": "alice", "date": .string(Fixed.date), "device": .string(deviceText)],
            "sign": .string(sig86)
        ]
    ),
    ("tally.list", ["state": "open", "limit": 20, "after": "x"]), ("tally.show", ["uuid": .string(u1)]),
    ("tally.invite", ["side": "stock", "limit": 1000, "memo": "m", "reuse": false, "expires": "48h", "for": alice.json]),
    ("tally.redeem", ["invite": .string(ticket.link)]), ("tally.redeem", ["invite": ticket.json]),
    ("tally.offer", ["uuid": .string(u1), "revision": 1, "hash": .string(digest), "sign": .string(sig86)]),
    ("tally.accept", ["uuid": .string(u1), "revision": 1, "hash": .string(digest)]),
    ("tally.refuse", ["uuid": .string(u1), "revision": 1]),
    (
        "tally.trade",
        ["trade": ["tally": .string(u1), "side": "foil", "target": 0, "bound": 10, "reward": 0, "clutch": 1, "date": .string(Fixed.date)]]
    ),
    ("chit.list", ["tally": .string(u1), "state": "pending"]),
    ("chit.pay", ["chit": Fixed.chit.core, "sign": .string(Fixed.chit.sign)]),
    ("chit.request", ["tally": .string(u1), "units": 5, "memo": "m", "ref": ["n": 1]]),
    ("chit.refuse", ["tally": .string(u1), "uuid": .string(u2), "reason": "no"]),
    ("lift.invoice", ["units": 5, "memo": "m"]),
    (
        "lift.pay",
        ["auth": ["uuid": .string(u2), "date": .string(Fixed.date), "to": ["cuid": "bob", "agent": .string(b.agent.description)], "units": 9]]
    ),
    ("lift.list", ["state": "good", "limit": 1]), ("lift.show", ["uuid": .string(u2)]),
    ("device.list", [:]), ("device.revoke", ["device": .string(deviceText)]),
    ("device.ticket", ["scopes": ["read", "pay"], "expires": "1d"]),
    ("events.subscribe", ["topics": ["chit", "sign"], "since": 3]), ("events.unsubscribe", [:])
]
for (n, (cmd, args)) in commandArgs.enumerated() {
    try seed(root, "user_command", "\(cmd)-\(n)", JSONValue.object(["id": .string("r\(n)"), "cmd": .string(cmd), "args": args]).canonicalBytes)
}
try seed(root, "user_command", "idem", Array(#"{"id":"i","cmd":"tally.refuse","args":{"uuid":"\#(u1)","revision":1},"idem":"\#(u2)"}"#.utf8))
try seed(root, "user_command", "float", Array(#"{"id":"f","cmd":"chit.request","args":{"tally":"\#(u1)","units":1.5e3}}"#.utf8))
try seed(root, "user_command", "unknown-cmd", Array(#"{"id":"u","cmd":"tally.delete"}"#.utf8))
try seed(root, "user_command", "no-id", Array(#"{"cmd":"ping","args":{"n":[-9007199254740992]}}"#.utf8))

// tally_dialog: [site and outbox bits, snapshot] + a real tally message.
let tallySelectors: [String: [(UInt8, UInt8)]] = [
    "ticket": [(0, 0), (0, 1), (0, 0x20), (0, 0x40), (0, 0x06)],
    "offer-to-alice": [(1, 0x08), (1, 0x28), (1, 0x48), (1, 0x01)],
    "offer-to-bob": [(0, 0x08), (0, 0x18)],
    "offer-free-to-alice": [(1, 0x28), (1, 0x08), (1, 0x68)],
    "open-to-bob": [(0, 0x01), (0, 0x83), (2, 0x83)],
    "open-to-alice": [(1, 0x03), (3, 0x03)],
    "void-to-bob": [(0, 0x01), (0, 0x84), (2, 0x04)],
    "draft-to-bob": [(0, 0x01)]
]
for (name, message) in Dialogs.tallyMessages {
    for (site, snapshot) in tallySelectors[name] ?? [(0, 0)] {
        try seed(root, "tally_dialog", "\(name)-\(site)-\(snapshot)", [site, snapshot] + message.canonicalBytes)
    }
}

// chain_dialog: [site bit + snapshot << 1] + a real chain message.
let chainSelectors: [String: [(side: UInt8, snapshot: UInt8)]] = [
    "tran": [(1, 1), (1, 3), (1, 5), (1, 0x08 | 2), (1, 0x20 | 5), (1, 0x40 | 1)],
    "upd": [(0, 0), (0, 2), (0, 5), (0, 0x10 | 1), (0, 0x40)],
    "upd-tail": [(0, 3), (0, 1)],
    "ack": [(1, 3), (1, 5), (1, 0)],
    "nak-refused": [(0, 0x10 | 2), (1, 2)]
]
for (name, message) in Dialogs.chainMessages {
    for (side, snapshot) in chainSelectors[name] ?? [(0, 0)] {
        try seed(root, "chain_dialog", "\(name)-\(side == 0 ? "stock" : "foil")-\(snapshot)", [side | snapshot << 1] + message.canonicalBytes)
    }
}
// route_message: [snapshot and clock byte] + a real route message (Lifts in LiftFixtures.swift).
let routeSelectors: [String: [UInt8]] = [
    "query-circ": [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0x40, 0x60],
    "query-circ-closing": [0, 0x08],
    "query-circ-ttl0": [0],
    "query-line-here": [0, 0x08, 0x10],
    "query-line-there": [0, 0x20]
]
for (name, message) in Lifts.routeMessages {
    for v in routeSelectors[name] ?? [0] {
        try seed(root, "route_message", "\(name)-\(v)", [v] + message.canonicalBytes)
    }
}

// lift_message: [snapshot byte] + a real lift message, chosen so that each
// reaches a decision that applies something (or answers).
let liftSelectors: [String: [UInt8]] = [
    "promise-circ": [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x80],
    "promise-line-relay": [0, 0x10, 0x20 | 0x40],
    "promise-line-here": [0, 0x40],
    "promise-circ-home": [0x80, 0x90, 0],
    "promise-invalid": [0, 0x01],
    "refuse-circ": [0x08, 0x28, 0x14],
    "refuse-circ-home": [0x14, 0x34, 0x54],
    "arrive-line-relay": [0x08, 0x14, 0x34],
    "ack-promise-circ": [0, 0x20],
    "ack-good-circ": [0],
    "good-circ": [0, 0x04, 0x01, 0x02],
    "void-circ": [0, 0x01, 0x02],
    "good-from-referee-line-relay": [0, 0x02],
    "commit-circ": [0, 0x01, 0x02, 0x03, 0x04 | 1 << 3],
    "abort-circ": [0, 0x04 | 2 << 3],
    "query-circ": [0, 0x01],
    "status-circ": [0, 0x01]
]
for (name, message) in Lifts.liftMessages {
    for v in liftSelectors[name] ?? [0] {
        try seed(root, "lift_message", "\(name)-\(v)", [v] + message.canonicalBytes)
    }
}
try seed(
    root, "lift_message", "seal-contents",
    [0] + JSONValue.object(["target": "lift", "action": "promise", "object": ["seal": Lifts.sealForB.json]]).canonicalBytes)

// pay_link: links (bare, full, with escapes) and sealed boxes (to site B, which opens them; to site C).
let payee = try PayLink(cuid: Dialogs.bob.cuid, agent: b.agent, units: 12_345, memo: "lunch & a+b = 100%", ref: ["invoice": 7, "note": "é"])
try seed(root, "pay_link", "bare", Array("bob:\(b.agent)".utf8))
try seed(root, "pay_link", "link", Array(payee.text.utf8))
try seed(root, "pay_link", "link-chad-only", Array(try PayLink(cuid: Dialogs.bob.cuid, agent: b.agent).text.utf8))
try seed(root, "pay_link", "link-plus", Array("\(PayLink.base)?memo=a+b%2Bc&chad=bob:\(b.agent)&units=1".utf8))
try seed(root, "pay_link", "seal-to-b", Array(Lifts.sealTextB.utf8))
try seed(root, "pay_link", "seal-to-c", Array(Lifts.sealTextC.utf8))
print("seedgen: wrote seeds under \(root)")
