import Foundation
import Testing
import TestSupport

/// `chipsite serve` against an independent site written in Python
/// (PyPI noiseprotocol + PyNaCl): interop and hostile input (protocol sections 2-5).
@Suite(.serialized) struct ServeTests {
    @Test func anIndependentPythonSiteOpensATallyOverIKThenTalksOverNK() throws {
        let dir = try TempDir()
        let b = try E2ESite(dir: dir, name: "b", user: "bob", port: freePort())
        let sb = try b.serve()
        defer { sb.stop() }
        let token = try #require((try json(try b.ticket())["invite"] as? [String: Any])?["token"] as? String)
        let r = try PeerVenv.peer(["interop", "127.0.0.1", "\(sb.port)", sb.agent, "bob", token])
        #expect(r["ok"] as? Bool == true)
        #expect((r["exchanged"] as? Int ?? 0) >= 40)
        let id = try #require(r["uuid"] as? String)
        let t = try b.tally(id)
        #expect(t["state"] as? String == "open")
        #expect(t["signatures_valid"] as? Bool == true)
        #expect((t["partner"] as? String)?.contains(r["agent"] as? String ?? "?") == true)
    }

    @Test func hostileInputIsClosedSilentlyWhileAHealthyPartnerKeepsTalking() throws {
        let dir = try TempDir()
        let b = try E2ESite(dir: dir, name: "b", user: "bob", port: freePort())
        #expect(try b.cli(["config", "set", "peer.handshake_timeout", "3"]).code == 0)
        // Not a referee: a referee site completes N + K from an agent it shares
        // no tally with (protocol 9.8), so `n-unknown` would get its answer.
        #expect(try b.cli(["config", "set", "lift.referee", "off"]).code == 0)
        let sb = try b.serve()
        defer { sb.stop() }
        let token = try #require((try json(try b.ticket())["invite"] as? [String: Any])?["token"] as? String)
        let state = dir.file("peer-state.json")
        _ = try PeerVenv.peer(["interop", "127.0.0.1", "\(sb.port)", sb.agent, "bob", token, state])
        let before = try contentDigest(b.db)

        // The healthy partner talks from 127.0.0.1 for the whole attack, which comes from 127.0.0.2.
        let healthy = Process()
        healthy.executableURL = URL(fileURLWithPath: try PeerVenv.python())
        healthy.arguments = [PeerVenv.script, "healthy", "127.0.0.1", "\(sb.port)", sb.agent, state, "12"]
        let out = Pipe()
        healthy.standardOutput = out
        healthy.standardError = FileHandle.nullDevice
        try healthy.run()
        defer { if healthy.isRunning { healthy.terminate() } }

        // i-token: a second I with the one-time token the interop peer already used.
        let cases = [
            "len0", "len16", "len65537", "lenmax", "header", "t-first", "k-first", "garbage", "n-unknown", "i-bad-token",
            "i-token:\(token):bob", "slowloris"
        ]
        nonisolated(unsafe) var results = [String: [String: Any]]()
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: cases.count) { i in
            let r = try? PeerVenv.peer(["hostile", "127.0.0.1", "\(sb.port)", cases[i], sb.agent, "127.0.0.2"], timeout: 60)
            lock.lock(); results[cases[i]] = r; lock.unlock()
        }
        for c in cases {
            let r = try #require(results[c], "\(c) did not run")
            #expect(r["closed"] as? Bool == true, "\(c): \(r)")
            #expect(r["received"] as? Int == 0, "\(c) got bytes back: \(r)")
            let limit = c == "slowloris" ? 3.0 + 2.0 : 1.0
            #expect((r["seconds"] as? Double ?? 99) <= limit, "\(c) took \(r["seconds"] ?? "?") s")
        }

        // A flood of connections from one address: all but the burst closed at once
        // (the peer waits until 40 are closed, at most 1.5 s: under the 3 s handshake timeout).
        let flood = try PeerVenv.peer(["flood", "127.0.0.1", "\(sb.port)", "50", "127.0.0.3", "40"])
        #expect((flood["closed_at_once"] as? Int ?? 0) >= 40, "\(flood)")

        let deadline = Date().addingTimeInterval(40)
        while healthy.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(healthy.terminationStatus == 0, "the healthy partner failed")
        let report = try json(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        #expect((report["exchanges"] as? Int ?? 0) > 100, "\(report)")
        #expect(try contentDigest(b.db) == before, "the attacks changed the site file")
    }
}
