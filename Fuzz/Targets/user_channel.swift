@testable import ChipChannel
import ChipModel
import Noise

/// Fuzz target `user_channel`: a whole responder `UserChannelMachine` (site
/// B's user port) fed what a device sends.
///
/// Byte 0: bit 0 is the site's answer to the machine's question (register
/// this token, is this device known); bit 7 picks the mode. Mode 0: the rest
/// is the byte stream from the device, cut into frames by `FrameReader` as
/// the edge does (a frame error is handed to the machine: a silent close).
/// Mode 1: a real device opens a session first, then every 0x00-separated
/// chunk of the rest goes to the site as one `T` plaintext, so the parse of
/// requests is fuzzed behind a real handshake.
///
/// Properties: nothing traps; nothing is delivered before the session is
/// open, and only JSON objects are; a close leaves the machine closed and
/// nothing is sent after it; the site's replies decrypt on the device.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let control = input.first else { return 0 }
    var site = UserSite(yes: control & 1 == 1)
    if control & 0x80 == 0 {
        var reader = FrameReader()
        reader.append(input.dropFirst())
        while !site.machine.isClosed {
            do {
                guard let frame = try reader.next() else { break }
                site.run(site.machine.receive(frame))
            } catch {
                site.run(site.machine.reject(error))
            }
        }
    } else {
        guard let device = try? KeyPair(privateKey: [UInt8](repeating: 0xD1, count: 32)),
            let started = try? UserChannelMachine.session(device: device, site: Fixed.siteB.agent)
        else { violated("the fixed device cannot start a session") }
        var client = started.0
        let hello = started.1
        site.yes = true
        let a = site.run(site.machine.receive(hello.sentFrames[0]))
        guard let aFrame = a.first, case .answered(.session)? = client.receive(aFrame).first, client.isOpen else {
            violated("a real session did not open")
        }
        for chunk in input.dropFirst().split(separator: 0, omittingEmptySubsequences: false) where !site.machine.isClosed {
            guard case .open(let transport) = client.state, let body = try? transport.encrypt(Array(chunk)) else { break }
            client.sentCount += 1
            for reply in site.run(site.machine.receive(Frame(.T, body))) {
                guard case .deliver? = client.receive(reply).first else { violated("a reply did not reach the device") }
            }
        }
        client.shutdown()
    }
    site.machine.shutdown()
    return 0
}

/// The site side: answers questions, answers each delivered request, checks the properties.
struct UserSite {
    var machine = UserChannelMachine.responder(local: Fixed.siteB.local)
    var yes: Bool
    var opened = false
    var closed = false

    init(yes: Bool) { self.yes = yes }

    /// Runs the actions to the end; returns the frames the site sent.
    @discardableResult
    mutating func run(_ actions: [UserChannelAction]) -> [Frame] {
        var pending = actions
        var sent = [Frame]()
        while !pending.isEmpty {
            let action = pending.removeFirst()
            if closed, case .send = action { violated("a frame sent after a close") }
            switch action {
            case .ask(let question):
                switch question {
                case .register: pending += machine.answerRegistration(yes ? (try? CUID("alice")) : nil)
                case .session:
                    let grant = (try? CUID("alice")).map { UserSessionGrant(user: $0, custody: .site, scopes: Set(UserScope.allCases)) }
                    pending += machine.answerSession(yes ? grant : nil)
                }
            case .opened:
                guard machine.isOpen else { violated("opened but the machine is not open") }
                opened = true
            case .deliver(let message):
                guard opened, machine.isOpen else { violated("delivered before the session was open") }
                guard message.json.objectValue != nil else { violated("delivered a non-object") }
                pending += (try? machine.send(["id": "x", "ok": true, "data": [:]])) ?? []
            case .close, .closeAfterSend:
                guard machine.isClosed else { violated("close action on a machine that is not closed") }
                closed = true
            case .answered:
                violated("the site read an answer")
            case .send(let frame):
                sent.append(frame)
            }
        }
        return sent
    }
}

extension [UserChannelAction] {
    var sentFrames: [Frame] { compactMap { if case .send(let f) = $0 { return f } else { return nil } } }
}
