import ChipModel
import ChipProtocol

// The `--json` shapes of the records the dialogs keep: a tally, a chit, an
// invoice. Field names are a contract with scripts and with the user port
// (doc/cli.md): add fields freely, never rename or remove one.

/// The JSON view of a tally.
public enum TallyView {
    public static func json(_ t: TallyRecord) -> JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(t.uuid), "user": .string(t.cuid.value), "side": .string(t.side.rawValue),
            "state": .string(t.state.rawValue), "partner": .string(t.partner.description), "partner_chad": t.partner.json,
            "revision": .integer(t.revision), "balance": .integer(t.balance), "created": .string(t.created),
            "updated": .string(t.updated), "hash": t.core.map { .string($0.hash) } ?? .null,
            "signatures": [
                "stock": .bool(t.core?.verify(t.sign?.stock, by: .stock) ?? false),
                "foil": .bool(t.core?.verify(t.sign?.foil, by: .foil) ?? false)
            ],
            "signatures_valid": .bool(t.signaturesValid),
            "note": t.note.map(JSONValue.string) ?? .null
        ]
        o["chain_length"] = .integer(t.chainLength)
        o["chain_head"] = t.core == nil ? .null : .string(t.chainHead ?? t.core?.hash ?? "")
        if let core = t.core {
            o["terms"] = ["stock": ["limit": .integer(core.limit(.stock))], "foil": ["limit": .integer(core.limit(.foil))]]
            o["memo"] = core.json["memo"] ?? .null
        }
        if let trade = t.trade { o["trade"] = trade.json }
        return .object(o)
    }
}

/// The JSON view of a chit (a payment) and where it stands.
public enum ChitView {
    public static func json(_ r: ChitRecord) -> JSONValue {
        [
            "id": .string(r.chit.uuid), "tally": .string(r.chit.tally), "by": .string(r.chit.by.rawValue),
            "units": .integer(r.chit.units), "memo": r.chit.memo.map(JSONValue.string) ?? .null,
            "ref": r.chit.core["ref"] ?? .null, "state": .string(r.state.rawValue),
            "index": r.index.map(JSONValue.integer) ?? .null, "hash": .string(r.chit.hash),
            "chain_hash": r.chainHash.map(JSONValue.string) ?? .null, "local": .bool(r.local),
            "note": r.note.map(JSONValue.string) ?? .null, "created": .string(r.created)
        ]
    }
}

/// The JSON view of an invoice (a request for a payment).
public enum InvoiceView {
    public static func json(_ i: InvoiceRecord) -> JSONValue {
        [
            "id": .string(i.uuid), "tally": .string(i.tally), "direction": .string(i.direction.rawValue),
            "units": .integer(i.units), "memo": i.memo.map(JSONValue.string) ?? .null, "state": .string(i.state.rawValue),
            "chit": i.chit.map(JSONValue.string) ?? .null, "note": i.note.map(JSONValue.string) ?? .null, "created": .string(i.created)
        ]
    }
}
