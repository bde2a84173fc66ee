import ChipModel
import Foundation
import Testing
@testable import ChipProtocol

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

/// Every fuzz input of the lift targets (Fuzz/Targets/route_message.swift,
/// lift_message.swift, pay_link.swift) goes through the same readers: a clean
/// result or a clean error, and what is read reads back from its own form.
/// The deciders' own fixed snapshots stay in Fuzz/Support; here each parsed
/// message meets an empty site.
@Suite struct FuzzRegressionTests {
    @Test(arguments: ["route_message", "lift_message", "pay_link"])
    func replay(target: String) {
        let inputs = fuzzInputs(target)
        #expect(!inputs.isEmpty, "no fuzz inputs for \(target)")
        var read = 0
        for (name, input) in inputs {
            switch target {
            case "route_message": read += route(input, name) ? 1 : 0
            case "lift_message": read += lift(input, name) ? 1 : 0
            default: read += payLink(input, name) ? 1 : 0
            }
        }
        // The seeds are real messages and links: most of them read.
        #expect(read * 2 >= inputs.count, "\(target): only \(read) of \(inputs.count) inputs read")
    }

    private func route(_ input: [UInt8], _ name: String) -> Bool {
        guard input.count > 1, let json = try? JSONValue(parsing: Array(input.dropFirst())), let m = try? RouteMessage(json: json) else {
            return false
        }
        let again = try? RouteMessage(json: m.json)
        #expect(again == m && again?.json == m.json, "\(name): round trip")
        let site = RouteDiscovery.Snapshot(site: m.to.agent, foreign: [], unlocked: [])
        // A site with no tallies answers nothing.
        if case .drop = RouteDiscovery.decide(m, snapshot: site) {} else { Issue.record("\(name): a site with no tallies answered") }
        return true
    }

    private func lift(_ input: [UInt8], _ name: String) -> Bool {
        guard input.count > 1, let json = try? JSONValue(parsing: Array(input.dropFirst())), let m = try? LiftMessage(json: json) else {
            return false
        }
        let again = try? LiftMessage(json: m.json)
        #expect(again == m && again?.json == m.json, "\(name): round trip")
        if case .promise(let h, _, let c) = m.body {
            #expect((try? LiftHeader(json: h.json)) == h, "\(name): header")
            #expect((try? LiftChit(json: c.json)) == c, "\(name): chit")
        }
        if case .decision(let d, _) = m.body { #expect((try? SignedDecision(json: d.json)) == d, "\(name): decision") }
        return true
    }

    private func payLink(_ input: [UInt8], _ name: String) -> Bool {
        let text = String(decoding: input, as: UTF8.self)
        let key = (try? SigningKey(seed: [UInt8](repeating: 0xB2, count: 32)))
        if let key, let opened = SealedBox.open(text, with: key, maxBytes: 8192) {
            #expect(opened.count + SealedBox.overhead == Base64URL.decode(text)?.count, "\(name): opened length")
            return true
        }
        guard let link = try? PayLink(text: text) else { return false }
        let again = try? PayLink(text: link.text)
        #expect(again == link && again?.text == link.text, "\(name): round trip")
        return true
    }
}
