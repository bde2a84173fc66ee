import ChipModel
import ChipProtocol

// The `--json` shapes of the lifts a site holds (`lift list`, `lift show`).
// Field names are a contract with scripts and with the user port
// (doc/cli.md): add fields freely, never rename or remove one.

/// The JSON view of a lift.
public enum LiftView {
    /// The summary `lift list` prints; `detail` adds the chits and decisions (`lift show`).
    public static func json(_ l: LiftOverview, detail: Bool = false) -> JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(l.id), "kind": l.kind.map { .string($0.rawValue) } ?? .null,
            "role": l.role.map { .string($0.rawValue) } ?? .null, "state": l.state.map(JSONValue.string) ?? .null,
            "units": l.units.map(JSONValue.integer) ?? .null, "deadline": l.deadline.map(JSONValue.string) ?? .null,
            "referee": l.referee.map(JSONValue.string) ?? .null, "tallies": .array(l.tallies.map(JSONValue.string)),
            "created": .string(l.created)
        ]
        if detail {
            o["chits"] = .array(l.chits.map(chit))
            o["decisions"] = .array(l.decisions.map(decision))
        }
        return .object(o)
    }

    public static func chit(_ c: LiftChitEntry) -> JSONValue {
        [
            "uuid": .string(c.uuid), "tally": .string(c.tally), "by": .string(c.by.rawValue), "units": .integer(c.units),
            "state": .string(c.state)
        ]
    }

    public static func decision(_ d: LiftDecisionEntry) -> JSONValue {
        [
            "result": .string(d.result.rawValue), "applied": .bool(d.applied), "referee": .bool(d.asReferee),
            "decision": d.decision, "created": .string(d.created)
        ]
    }
}
