import ChipModel
import Foundation
import Testing

/// The fuzz inputs of one target (doc/testing.md): the committed seed corpus
/// `Fuzz/corpus/<target>/` and the inputs kept from crashes or hangs
/// `Fuzz/regressions/<target>/`, as (file name, bytes).
private func fuzzInputs(_ target: String) -> [(name: String, bytes: [UInt8])] {
    let fuzz = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz")
    var out: [(String, [UInt8])] = []
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.appendingPathComponent(kind).appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        for name in names.sorted() {
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { continue }
            out.append(("\(kind)/\(target)/\(name)", [UInt8](data)))
        }
    }
    return out
}

/// Every fuzz input of the model's targets goes through the same entry point
/// as in its fuzz target (Fuzz/Targets/NAME.swift) and must give a clean
/// result or a clean error, with the target's properties holding.
@Suite struct FuzzRegressionTests {
    @Test(arguments: ["json", "canonical", "ticket", "tally", "chit", "certificate", "chad"])
    func replay(target: String) throws {
        let inputs = fuzzInputs(target)
        #expect(!inputs.isEmpty, "no fuzz inputs for \(target)")
        for (name, input) in inputs {
            switch target {
            case "json", "canonical": canonicalIsStable(input, name)
            case "ticket": ticketReadsBack(input, name)
            case "tally": tallyReadsBack(input, name)
            case "chit": chitReadsBack(input, name)
            case "certificate": certificateReadsBack(input, name)
            default: chadReadsBack(input, name)
            }
        }
    }

    /// Hostile inputs written by hand: they must be refused cleanly.
    @Test func hostileJSONIsRefused() {
        let deep = [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
        #expect(throws: ModelError.self) { try JSONValue(parsing: deep) }
        #expect(throws: ModelError.self) { try JSONValue(parsing: "9223372036854775808") }
        #expect(throws: ModelError.self) { try JSONValue(parsing: "\"\\ud800\"") }
        #expect(throws: ModelError.self) { try JSONValue(parsing: [0x22, 0xC0, 0x80, 0x22]) }
        #expect(throws: ModelError.self) { try JSONValue(parsing: "{\"a\":1,\"a\":2}") }
        #expect(throws: ModelError.self) { try TallyTicket(parsing: String(repeating: " ", count: 5000)) }
        #expect(throws: ModelError.self) { try CHAD(text: "a:b@[") }
    }

    private func canonicalIsStable(_ input: [UInt8], _ name: String) {
        guard let value = try? JSONValue(parsing: input) else { return }
        let canonical = value.canonicalBytes
        let again = try? JSONValue(parsing: canonical)
        #expect(again == value, "\(name): canonical round trip changed the value")
        #expect(again?.canonicalBytes == canonical, "\(name): canonical bytes changed")
        #expect((try? JSONValue(parsing: value.prettyString)) == value, "\(name): pretty form does not parse back")
    }

    private func ticketReadsBack(_ input: [UInt8], _ name: String) {
        guard let ticket = try? TallyTicket(parsing: String(decoding: input, as: UTF8.self)) else { return }
        #expect((try? TallyTicket(parsing: ticket.json.canonicalString)) == ticket, "\(name): JSON form")
        let fromLink = try? TallyTicket(parsing: ticket.link)
        #expect(fromLink?.token == ticket.token && fromLink?.chad == ticket.chad, "\(name): link form")
    }

    private func tallyReadsBack(_ input: [UInt8], _ name: String) {
        guard let value = try? JSONValue(parsing: input) else { return }
        for candidate in [value, value["object"]].compactMap({ $0 }) {
            var cores: [TallyCore] = []
            if let (core, sign) = try? TallyObject.parse(candidate) {
                _ = core.verify(sign.stock, by: .stock)
                _ = core.verify(sign.foil, by: .foil)
                cores.append(core)
            }
            if let core = try? TallyCore(json: candidate) { cores.append(core) }
            for core in cores {
                let again = try? JSONValue(parsing: core.canonicalBytes)
                #expect(again.flatMap { try? TallyCore(json: $0) } == core, "\(name): tally core does not read back")
            }
        }
    }

    private func chitReadsBack(_ input: [UInt8], _ name: String) {
        guard let value = try? JSONValue(parsing: input) else { return }
        let candidates = [value] + (value["object"]?["chits"]?.arrayValue ?? []) + (value["object"]?["entries"]?.arrayValue ?? [])
        for candidate in candidates {
            guard let chit = try? Chit(json: candidate) else { continue }
            #expect((try? Chit(json: chit.json)) == chit, "\(name): chit does not read back")
        }
    }

    private func certificateReadsBack(_ input: [UInt8], _ name: String) {
        guard let value = try? JSONValue(parsing: input), let cert = try? Certificate(json: value) else { return }
        #expect((try? Certificate(json: cert.json)) == cert, "\(name): certificate does not read back")
    }

    private func chadReadsBack(_ input: [UInt8], _ name: String) {
        var chads: [CHAD] = []
        if let value = try? JSONValue(parsing: input), let chad = try? CHAD(json: value) { chads.append(chad) }
        if let chad = try? CHAD(text: String(decoding: input, as: UTF8.self)) { chads.append(chad) }
        for chad in chads {
            #expect((try? CHAD(json: chad.json)) == chad, "\(name): CHAD JSON form")
            #expect((try? CHAD(text: chad.description)) == chad, "\(name): CHAD text form")
        }
    }
}
