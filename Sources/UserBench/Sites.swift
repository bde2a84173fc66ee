import BenchSupport
import ChipModel
import ChipUserPort
import Foundation
import Noise

/// Two sites set up with the CLI as an admin would: a (the users who pay,
/// its user port on `config user.port`) and b (bob, who grants each a
/// large credit limit), each served by a real `chipsite serve`; the users
/// of a each with an open tally to bob and one registered device.
final class Sites: @unchecked Sendable {
    let binary: String
    let dir: TempDir
    let aPort = freePort(), aUserPort = freePort()
    let bPort = freePort(), bUserPort = freePort()
    var a: ServeChild?, b: ServeChild?
    let aDB: String, bDB: String
    /// Each user of a: name, tally uuid, its side ("foil"), the device's key.
    var users: [(name: String, tally: String, side: String, key: KeyPair)] = []
    var address: SiteAddress?
    var agent: AgentID?

    init(binary: String, dir: TempDir) {
        self.binary = binary
        self.dir = dir
        aDB = dir.file("a.db")
        bDB = dir.file("b.db")
    }

    @discardableResult
    func cli(_ db: String, _ args: [String]) throws -> String {
        let r = try runCLI(binary, args + ["--db", db], home: dir.path)
        guard r.code == 0 else {
            throw BenchError("chipsite \(args.prefix(2).joined(separator: " ")) failed (\(r.code)): \(r.stderr.suffix(500))")
        }
        return r.stdout
    }

    func json(_ text: String, _ what: String) throws -> JSONValue {
        do { return try JSONValue(parsing: text) } catch { throw BenchError("\(what): not JSON: \(text.prefix(300))") }
    }

    /// `init`, `user add`, `config set user.port`, both serves started.
    func start(cleanup: Cleanup) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchError("no chipsite binary at \(binary) (build it, or pass --binary PATH)")
        }
        try cli(aDB, ["init", "--host", "127.0.0.1", "--port", "\(aPort)"])
        try cli(bDB, ["init", "--host", "127.0.0.1", "--port", "\(bPort)"])
        try cli(bDB, ["user", "add", "bob", "--name", "Bob"])
        // Before serve starts: the user tickets name this port.
        try cli(aDB, ["config", "set", "user.port", "\(aUserPort)"])
        try cli(bDB, ["config", "set", "user.port", "\(bUserPort)"])
        for (db, key, value) in [(aDB, "lift.interval", "0"), (bDB, "lift.interval", "0")] { try cli(db, ["config", "set", key, value]) }
        let sa = try ServeChild(binary: binary, db: aDB, port: aPort, userPort: aUserPort, logVariable: "USER_BENCH_SERVE_LOG")
        cleanup.track(pid: sa.pid)
        a = sa
        let sb = try ServeChild(binary: binary, db: bDB, port: bPort, userPort: bUserPort, logVariable: "USER_BENCH_SERVE_LOG")
        cleanup.track(pid: sb.pid)
        b = sb
    }

    /// Adds `name` to a with a tally to bob (bob's ticket with `limit`
    /// CHIPs, `tally request --accept` on a, `tally accept` if the offer
    /// was not taken at once), then a user ticket and a registered device.
    func addUser(_ name: String, limit: String, timeout: Double) async throws {
        try cli(aDB, ["user", "add", name, "--name", name.capitalized])
        let ticket = try cli(bDB, ["ticket", "tally", "bob", "--format", "json", "--limit", limit])
        let request = try json(try cli(aDB, ["tally", "request", name, ticket, "--accept", "--json"]), "tally request")
        guard let tally = request["id"]?.stringValue else { throw BenchError("tally request: no id in \(request.canonicalString.prefix(300))") }
        if request["state"]?.stringValue != "open" { try cli(aDB, ["tally", "accept", tally]) }
        let deadline = now() + timeout
        var side: String?
        while now() < deadline {
            let show = try json(try cli(aDB, ["tally", "show", tally, "--json"]), "tally show")
            if show["state"]?.stringValue == "open" {
                side = show["side"]?.stringValue
                break
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        guard let side else { throw BenchError("the tally of \(name) with bob did not open within \(Int(timeout)) s") }

        let text = try cli(aDB, ["user", "ticket", name, "--format", "json"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let userTicket: UserTicket
        do { userTicket = try UserTicket(parsing: text) } catch { throw BenchError("user ticket: \(error)") }
        let key = KeyPair.generate()
        // The user port allows 20 handshakes a second from one address (burst 5): pace them.
        try await Task.sleep(nanoseconds: 60_000_000)
        do {
            _ = try await UserPortClient.register(ticket: userTicket, deviceName: "bench-\(name)", deviceKey: key, timeout: timeout)
        } catch {
            throw BenchError("register a device of \(name): \(error)")
        }
        address = userTicket.address
        agent = userTicket.agent
        users.append((name, tally, side, key))
    }

    /// A session for user `i`'s device (retried twice, paced: the
    /// per-address handshake rate).
    func session(_ i: Int, timeout: Double) async throws -> BenchSession {
        guard let address, let agent else { throw BenchError("no device registered") }
        var last: any Error = BenchError("no attempt")
        for attempt in 0..<3 {
            try await Task.sleep(nanoseconds: UInt64(60_000_000 + attempt * 1_000_000_000))
            do { return try await BenchSession.open(address: address, agent: agent, key: users[i].key, name: users[i].name, timeout: timeout) } catch
            {
                last = error
            }
        }
        throw last
    }

    func stop(cleanup: Cleanup) {
        for s in [a, b].compactMap({ $0 }) {
            s.stop()
            cleanup.untrack(pid: s.pid)
        }
        a = nil
        b = nil
    }
}
