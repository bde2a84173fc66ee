import ChipChannel
import ChipModel

/// Fuzz target `user_channel`: a whole responder `UserChannelMachine` (site
/// B's user port) fed the frames parsed from the input.
///
/// Byte 0 holds the site's answers to the machine's questions (bit i answers
/// question i: register this token, is this device known); the rest is the
/// byte stream from the device, cut into frames by `FrameReader` as the edge
/// does. A frame error is handed to the machine (a silent close). Properties:
/// nothing traps; nothing is delivered before the session is open; a close
/// leaves the machine closed and nothing is sent after it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let answers = input.first, let alice = try? CUID("alice") else { return 0 }
    let grant = UserSessionGrant(user: alice, custody: .site, scopes: Set(UserScope.allCases), features: [])
    var reader = FrameReader()
    reader.append(input.dropFirst())
    var machine = UserChannelMachine.responder(local: Fixed.siteB.local)
    var asked = 0
    var opened = false
    var closed = false
    while !machine.isClosed {
        var pending: [UserChannelAction]
        do {
            guard let frame = try reader.next() else { break }
            pending = machine.receive(frame)
        } catch {
            pending = machine.reject(error)
        }
        while !pending.isEmpty {
            let action = pending.removeFirst()
            if closed, case .send = action { violated("a frame sent after a close") }
            switch action {
            case .ask(let question):
                let yes = answers >> (asked % 8) & 1 == 1
                asked += 1
                switch question {
                case .register: pending += machine.answerRegistration(yes ? alice : nil)
                case .session: pending += machine.answerSession(yes ? grant : nil)
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
            case .send:
                break
            }
        }
    }
    machine.shutdown()
    return 0
}
