import ChipModel
import ChipProtocol

/// Fuzz target `user_command`: bytes (one `T` frame's plaintext) into the
/// user port's request parser (protocol 10.5-10.6).
///
/// Properties: nothing traps; a parsed request re-encodes and parses back
/// equal, from its bytes and as the channel delivers it; every refusal is a
/// session close or an error reply with one of 10.5's codes, whose JSON
/// carries that code's wire name.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    do throws(UserRequestFailure) {
        let request = try UserRequest(parsing: input)
        let again: UserRequest
        let delivered: UserRequest
        do throws(UserRequestFailure) {
            again = try UserRequest(parsing: request.json.canonicalBytes)
            delivered = try UserRequest(message: UserMessage(json: request.json))
        } catch {
            violated("a parsed request does not parse back: \(error)")
        }
        guard again == request, delivered == request else { violated("a parsed request re-encodes differently") }
        guard DeviceCommand.names.contains(request.command.name) else { violated("a command outside 10.6") }
        guard request.command.scope.permits(Set(UserScope.allCases)) else { violated("a command no scope permits") }
        if request.idem != nil, request.command.idempotency != .idem { violated("idem accepted on a command without it") }
    } catch {
        switch error {
        case .closeSession:
            break
        case .reply(let id, let e):
            guard let reply = error.reply, let code = reply["error"]?["code"]?.stringValue,
                UserErrorCode(rawValue: code) == e.code, UserErrorCode.allCases.contains(e.code)
            else { violated("an error reply without one of 10.5's codes") }
            if let id { guard reply["id"]?.stringValue == id else { violated("an error reply with another id") } }
        }
    }
    return 0
}
