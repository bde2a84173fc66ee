import ChipChannel
import ChipModel
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
print("seedgen: wrote seeds under \(root)")
