import ChipChannel
import ChipModel
import ChipPeer
import Foundation
import GRDB
import Logging
import NIOConcurrencyHelpers
import Testing
import TestSupport
@testable import ChipDaemon
import ChipProtocol
@testable import ChipStore

/// Polls `condition` every 20 ms for at most `seconds` (TestSupport's `waitUntil`).
func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
    try await waitUntil(timeout: seconds, every: 0.02, condition)
}

/// Messages an engine delivered, for assertions.
final class Inbox: Sendable {
    private let box = NIOLockedValueBox<[(JSONValue, AgentID)]>([])
    func add(_ m: JSONValue, _ from: AgentID) { box.withLockedValue { $0.append((m, from)) } }
    var messages: [JSONValue] { box.withLockedValue { $0.map(\.0) } }
    func contains(action: String) -> Bool { messages.contains { $0["action"]?.stringValue == action } }
    func count(action: String) -> Int { messages.filter { $0["action"]?.stringValue == action }.count }
}

/// One running site in this process: its file, its daemon on a loopback port.
final class TestSite: @unchecked Sendable {
    let store: SiteStore
    let key: SigningKey
    let agent: AgentID
    var daemon: SiteDaemon?
    var runTask: Task<Void, Never>?
    var port = 0
    let inbox = Inbox()
    let path: String

    /// `port`: the address written in the site file (its users' certificates);
    /// `start(port:)` binds it when a test needs partners to dial what the certificates say.
    init(dir: TempDir, name: String, port sitePort: Int = 65430) throws {
        path = dir.file("\(name).db")
        store = try SiteStore.create(at: path, address: try SiteAddress(host: "127.0.0.1", port: sitePort), passphrase: nil)
        key = try store.siteKey(sealingKey: nil)
        agent = try store.agent()
        try store.addUser(cuid: try CUID(name), name: name.capitalized, email: nil, sealingKey: nil)
    }

    func chad(_ cuid: String) throws -> CHAD {
        CHAD(cuid: try CUID(cuid), agent: agent, address: try SiteAddress(host: "127.0.0.1", port: port))
    }

    func start(
        limits: PeerLimits = PeerLimits(), port wanted: Int = 0, watch: Bool = false,
        clock: any SiteClock = SystemClock(), random: any SiteRandom = SystemRandom()
    ) async throws {
        var logger = Logger(label: "test")
        // CHIPSITE_TEST_LOG=debug shows the engines' logs.
        logger.logLevel = ProcessInfo.processInfo.environment["CHIPSITE_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        logger[metadataKey: "site"] = "\((path as NSString).lastPathComponent)"
        let d = try SiteDaemon(store: store, siteKey: key, sealingKey: nil, limits: limits, logger: logger, clock: clock, random: random)
        if watch { d.watchSiteFile(path) }
        let bound = try await d.start(host: "127.0.0.1", port: wanted)
        port = bound.port ?? 0
        let inbox = self.inbox
        await d.engine.observe { m, from in inbox.add(m, from) }
        daemon = d
        runTask = Task { await d.run() }
    }

    func stop() async {
        runTask?.cancel()
        await runTask?.value
        await daemon?.stop()
        daemon = nil
    }

    /// Makes `other` a tally partner of this site's first user (a tally row
    /// in negotiation), so N+K channels are allowed both ways.
    func addPartner(_ other: TestSite, cuid: String, otherCuid: String) throws {
        let uuid = UUID().uuidString.lowercased()
        let otherAgent = other.agent.description
        let port = other.port
        try store.database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO tallies (uuid, cuid, side, partner_agent, partner_cuid, partner_host, partner_port, state, core, created, updated)
                    VALUES (?, ?, 'stock', ?, ?, '127.0.0.1', ?, 'P.offer', '{}', 'now', 'now')
                    """, arguments: [uuid, cuid, otherAgent, otherCuid, port])
        }
    }

    func message(_ action: String, from: String, to other: TestSite, toCuid: String, topic: String = "t1") throws -> JSONValue {
        [
            "target": "tally", "action": .string(action), "from": try chad(from).json, "to": try other.chad(toCuid).json,
            "object": ["topic": .string(topic)]
        ]
    }
}
