import ChipModel
import ChipProtocol

/// Fuzz target `user_session`: the user session's decider (protocol
/// 10.4-10.5, ChipProtocol/UserSession.swift) driven by a script the bytes
/// spell: frames (the bytes up to a 0xFF, parsed as a request), commands
/// finishing in any order with zero to two events committed, change notices
/// and event loads, on a machine with scopes, custody and lock from byte 0.
///
/// Properties: nothing traps; events go out in
/// strictly rising `seq` within a subscription, never one of a command's
/// before that command's reply; never more than 32 requests run; one load at a time.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let first = input.first else { return 0 }
    let scopes = Set(UserScope.allCases.enumerated().filter { first & (1 << $0.offset) != 0 }.map(\.element))
    var machine = UserSessionMachine(scopes: scopes, custody: first & 0x20 != 0 ? .device : .site, locked: first & 0x40 != 0)
    var committed: Int64 = 0
    var owner: [Int64: String] = [:]
    var running: [UserRequest] = []
    var replied = Set<String>()
    var lastSent: Int64 = 0
    var loading: Int64?

    func take(_ actions: [UserSessionAction]) {
        for action in actions {
            switch action {
            case .send(let json):
                if let seq = json["seq"]?.integerValue, json["event"] != nil {
                    if json["event"]?.stringValue == "resync" { continue }
                    guard seq > lastSent else { violated("event \(seq) after \(lastSent)") }
                    if let id = owner[seq], !replied.contains(id) { violated("event \(seq) before the reply to \(id)") }
                    lastSent = seq
                } else if let id = json["id"]?.stringValue {
                    replied.insert(id)
                }
            case .run(let request):
                if running.contains(where: { $0.id == request.id }) { violated("\(request.id) runs twice at once") }
                running.append(request)
                if running.count > UserSessionMachine.maxInFlight { violated("more than 32 requests run") }
            case .loadEvents(let after):
                if loading != nil { violated("two loads at once") }
                loading = after
            case .close:
                break
            }
        }
    }

    var rest = input.dropFirst()
    while let op = rest.first {
        rest = rest.dropFirst()
        switch op % 4 {
        case 0:
            // A frame: the bytes up to the next 0xFF.
            let end = rest.firstIndex(of: 0xFF) ?? rest.endIndex
            let frame = Array(rest[rest.startIndex..<end])
            rest = rest[end...].dropFirst()
            if let message = try? UserMessage(parsing: frame) {
                take(machine.received(message, now: 1_764_633_600_000, latestSeq: committed))
            }
        case 1:
            guard !running.isEmpty else { continue }
            let request = running.remove(at: Int(op / 4) % running.count)
            replied.remove(request.id)
            for _ in 0..<Int(op / 4) % 3 {
                committed += 1
                owner[committed] = request.id
            }
            switch request.command {
            case .eventsSubscribe:
                // A new subscription replays from its own `since`.
                lastSent = 0
                take(machine.finished(request, .subscribed(latest: committed, resync: op & 0x80 != 0)))
            case .eventsUnsubscribe: take(machine.finished(request, .unsubscribed))
            default: take(machine.finished(request, .reply(UserReply.ok(id: request.id, data: [:]))))
            }
        case 2:
            committed += Int64(op / 64)
            take(machine.eventsCommitted(latest: committed))
        default:
            guard let after = loading else { continue }
            loading = nil
            let count = Int64(op / 4) % 4
            let batch = (0..<count).map { after + 1 + $0 }.filter { $0 <= committed }.map {
                UserEvent(topic: .chit, seq: $0, data: [:])
            }
            take(machine.loaded(batch, after: after, latest: committed))
        }
    }
    return 0
}
