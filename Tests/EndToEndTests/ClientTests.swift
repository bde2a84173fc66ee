import ChipChannel
import ChipModel
import ChipProtocol
import ChipUserPort
import Foundation
import Logging
import NIOPosix
import Noise
import Testing

// `chipsite client` (the built binary) against a scripted site: the user
// port's real listener (ChipUserPort) in this process, with a host that
// answers the commands of protocol 10.6 from memory. What the client sends
// is read with the site's own parser (`UserRequest`), so a malformed
// request fails here as it would on a real site.

/// The site in memory: one user, alice, with one open tally.
actor ScriptedSite: UserPortHost {
    let agent: AgentID
    var address = "127.0.0.1:0"
    var tokens: [String: CUID] = [:]
    var devices: [DeviceID: UserSessionGrant] = [:]
    var names: [DeviceID: String] = [:]
    /// Events as sent, in seq order.
    var events: [UserEvent] = []
    var subscribers: [UInt64: UserSession] = [:]
    /// chit.pay requests received (the args' chit), and the chits kept by uuid.
    var payRequests: [JSONValue] = []
    var chits: [String: JSONValue] = [:]
    /// Close the session on this many chit.pay requests before answering.
    var dropPays = 0
    var commands: [String] = []
    let tally = "8d3e2a4c-1b2f-4c5d-9e8f-0a1b2c3d4e5f"
    /// The user's signing key while the site holds it (custody site).
    let userKey = SigningKey.generate()
    var custody = UserCustody.site
    /// The session of the last `me.key.take` fetch.
    var fetchSession: UInt64?
    /// chit.pay signatures that verified against the user's key.
    var verifiedSignatures = 0

    init(agent: AgentID) { self.agent = agent }

    func addToken(_ token: String, user: String) throws { tokens[token] = try CUID(user) }
    func setDropPays(_ n: Int) { dropPays = n }
    func revokeAll() { devices = [:] }
    func setAddress(_ a: String) { address = a }
    /// Closes every subscribed session (a dropped connection).
    func kickSubscribers() {
        for s in subscribers.values { s.close() }
        subscribers = [:]
    }
    var subscriberCount: Int { subscribers.count }

    func register(_ registration: UserRegistration, from address: String) async -> CUID? {
        guard let user = tokens.removeValue(forKey: registration.token) else { return nil }
        devices[registration.device] = UserSessionGrant(user: user, custody: .site, scopes: Set(UserScope.allCases), features: ["events"])
        names[registration.device] = registration.deviceName
        return user
    }

    func session(device: DeviceID, from address: String) async -> UserSessionGrant? {
        guard var grant = devices[device] else { return nil }
        grant.custody = custody
        return grant
    }
    func opened(_ session: UserSession) async {}
    func closed(_ session: UserSession) async { subscribers[session.id] = nil }

    var core: JSONValue {
        let parts = address.split(separator: ":")
        let chad: JSONValue = [
            "cuid": "alice", "agent": .string(agent.description), "host": .string(String(parts.first ?? "")),
            "port": .integer(Int64(parts.last.flatMap { Int($0) } ?? 0))
        ]
        let partner: JSONValue = ["cuid": "bob", "agent": .string(agent.description), "host": "127.0.0.1", "port": 1]
        return [
            "version": 1, "revision": 1, "uuid": .string(tally), "date": "2026-11-24T21:00:00.000Z",
            "stock": ["cert": ["chad": chad, "name": "Alice"], "terms": ["limit": 0]],
            "foil": ["cert": ["chad": partner, "name": "Bob"], "terms": ["limit": 100_000]]
        ]
    }

    func append(_ topic: UserTopic, _ data: JSONValue) async {
        let event = UserEvent(topic: topic, seq: Int64(events.count + 1), data: data)
        events.append(event)
        for s in subscribers.values { try? await s.send(event.json) }
    }

    func received(_ message: UserMessage, on session: UserSession) async {
        let request: UserRequest
        do { request = try UserRequest(message: message) } catch {
            if let reply = error.reply { try? await session.send(reply) } else { session.close() }
            return
        }
        commands.append(request.command.name)
        let id = request.id
        func ok(_ data: JSONValue) async { try? await session.send(UserReply.ok(id: id, data: data)) }
        func fail(_ code: UserErrorCode, _ text: String) async { try? await session.send(UserReply.error(id: id, UserError(code, text))) }
        switch request.command {
        case .ping: await ok(["time": "2026-11-24T21:00:00.000Z"])
        case .meShow:
            await ok([
                "cuid": .string(session.user.value), "chad": .string("\(session.user.value):\(agent)"), "custody": .string(custody.rawValue),
                "locked": false, "assets": 0, "liabilities": 0, "net": 0, "cert": ["public": UserKeyJWK.json(publicKey: userKey.publicKey)]
            ])
        case .meKeyTakeFetch:
            guard custody == .site else { return await fail(.state, "the key is held by a device") }
            fetchSession = session.id
            var seed = userKey.exportSeed()
            defer { Crypto.wipe(&seed) }
            guard let sealed = try? KeyTransfer.seal(seed: seed, to: session.device.publicKey) else { return await fail(.internal, "seal") }
            await ok(["key": .string(sealed)])
        case .meKeyTakeConfirm(let proof, let sign):
            guard let fetched = fetchSession, fetched != session.id else { return await fail(.state, "confirm in a later session") }
            guard proof.device == session.device, let sig = Base64URL.decode(sign),
                Ed25519.verify(signature: sig, message: proof.json.canonicalBytes, publicKey: userKey.publicKey)
            else { return await fail(.signInvalid, "bad proof") }
            custody = .device
            await ok(["custody": "device"])
        case .tallyList:
            await ok(
                UserPage.data(
                    items: [
                        [
                            "uuid": .string(tally), "state": "open", "side": "stock",
                            "partner": ["chad": ["cuid": "bob", "agent": .string(agent.description)], "name": "Bob"], "balance": 0,
                            "limits": ["stock": 0, "foil": 100_000]
                        ]
                    ], next: nil))
        case .tallyShow(let uuid):
            guard uuid == tally else { return await fail(.notFound, "no such tally") }
            await ok([
                "core": core, "hash": .string(Base64URL.encode(Crypto.sha256(core.canonicalBytes))), "state": "open", "revision": 1,
                "balance": 0, "pending": 0, "sign": [:], "trade": nil
            ])
        case .chitPay(let chit, let uuid, let sign):
            payRequests.append(chit)
            if custody == .device {
                guard let sign, let sig = Base64URL.decode(sign),
                    Ed25519.verify(signature: sig, message: chit.canonicalBytes, publicKey: userKey.publicKey)
                else { return await fail(.signInvalid, "chit.pay needs the user's signature") }
                verifiedSignatures += 1
            } else if sign != nil {
                return await fail(.signInvalid, "the site signs for this user")
            }
            if dropPays > 0 {
                dropPays -= 1
                session.close()
                return
            }
            let replayed = chits[uuid] != nil
            if !replayed {
                chits[uuid] = chit
                await append(.chit, ["uuid": .string(uuid), "tally": .string(tally), "state": "pending"])
            }
            try? await session.send(UserReply.ok(id: id, data: ["uuid": .string(uuid), "state": "pending"], replayed: replayed))
        case .chitRequest(let t, let units, _, _):
            guard t == tally else { return await fail(.notFound, "no such tally") }
            let uuid = TallyCore.newUUID()
            await ok(["uuid": .string(uuid)])
            await append(.invoice, ["uuid": .string(uuid), "tally": .string(tally), "units": .integer(units)])
        case .eventsSubscribe(_, let since):
            await ok(["seq": .integer(Int64(events.count))])
            if let since { for e in events where e.seq > since { try? await session.send(e.json) } }
            subscribers[session.id] = session
        case .deviceList:
            await ok(
                UserPage.data(
                    items: devices.keys.map { d in
                        ["device": .string(d.description), "name": .string(names[d] ?? ""), "scopes": UserScope.json(Set(UserScope.allCases))]
                    }, next: nil))
        default: await fail(.unknownCmd, "not scripted: \(request.command.name)")
        }
    }
}

/// A scripted site listening on loopback.
struct ClientFixture {
    let key = SigningKey.generate()
    let site: ScriptedSite
    let listener: UserPortListener
    let port: Int
    let config: String

    init() async throws {
        let agent = try AgentID(publicKey: key.publicKey)
        site = ScriptedSite(agent: agent)
        var sk = key.curve25519SecretKey()
        defer { Crypto.wipe(&sk) }
        var logger = Logger(label: "client-tests")
        logger.logLevel = .critical
        listener = UserPortListener(
            local: LocalSite(agent: agent, staticKey: try KeyPair(privateKey: sk)), host: site, group: MultiThreadedEventLoopGroup.singleton,
            logger: logger)
        port = try await listener.listen(host: "127.0.0.1", port: 0)
        await site.setAddress("127.0.0.1:\(port)")
        config = NSTemporaryDirectory() + "chipsite-client-\(UUID().uuidString)"
    }

    var agent: AgentID { site.agent }

    /// A fresh ticket for alice, in its JSON form.
    func ticket(user: String = "alice") async throws -> String {
        let token = UserTicket.newToken()
        try await site.addToken(token, user: user)
        let t = try UserTicket(
            address: try SiteAddress(host: "127.0.0.1", port: port), agent: site.agent, user: try CUID(user), token: token,
            expires: "2099-01-01T00:00:00.000Z")
        return t.json.canonicalString
    }

    /// Runs `chipsite client ARGS` with this fixture's XDG_CONFIG_HOME, off the
    /// cooperative pool (the site answers on it meanwhile).
    func client(_ args: [String], stdin: String? = nil, timeout: TimeInterval = 60) async throws -> Result {
        let env = ["XDG_CONFIG_HOME": config]
        return try await withCheckedThrowingContinuation { c in
            Thread.detachNewThread {
                do {
                    if let stdin {
                        c.resume(
                            returning: try runWithInput(try chipsiteBinary(), ["client"] + args, input: stdin, environment: env, timeout: timeout))
                    } else {
                        c.resume(returning: try chipsite(["client"] + args, environment: env, timeout: timeout))
                    }
                } catch { c.resume(throwing: error) }
            }
        }
    }

    func profileDir(_ name: String = "default") -> String { config + "/chipsite/client/" + name }

    func register(profile: String = "default") async throws -> Result {
        let r = try await client(["register", try await ticket(), "--name", "test device", "--profile", profile])
        #expect(r.code == 0, "register: \(r.stderr)")
        return r
    }

    func stop() async {
        await listener.shutdown()
        try? FileManager.default.removeItem(atPath: config)
    }
}

/// Runs `executable` with `input` on stdin.
func runWithInput(_ executable: String, _ arguments: [String], input: String, environment: [String: String], timeout: TimeInterval) throws -> Result {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()]
    env.merge(environment) { $1 }
    process.environment = env
    let out = Pipe(), err = Pipe(), inp = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inp
    try process.run()
    inp.fileHandleForWriting.write(Data(input.utf8))
    try inp.fileHandleForWriting.close()
    nonisolated(unsafe) var outData = Data(), errData = Data()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        outData = out.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    if group.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        throw RunError("\(arguments.joined(separator: " ")) did not finish in \(timeout) s")
    }
    process.waitUntilExit()
    return Result(
        code: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

func mode(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

@Suite(.serialized) struct ClientTests {
    @Test func registerWritesTheProfileWithTightModes() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        let r = try await f.client(["register", try await f.ticket(), "--name", "test device", "--json"])
        #expect(r.code == 0, "\(r.stderr)")
        let out = try json(r.stdout)
        #expect(out["user"] as? String == "alice")
        #expect(out["profile"] as? String == "default")
        let dir = f.profileDir()
        #expect(mode(dir) == 0o700)
        #expect(mode(dir + "/device.key") == 0o600)
        #expect(mode(dir + "/device.json") == 0o600)
        let profile = try json(String(decoding: fileBytes(dir + "/device.json") ?? Data(), as: UTF8.self))
        #expect(profile["user"] as? String == "alice")
        #expect(profile["port"] as? Int == f.port)
        #expect(profile["device"] as? String == out["device"] as? String)
        // The key is never printed.
        let keyText = String(decoding: fileBytes(dir + "/device.key") ?? Data(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(keyText.count == 43)
        #expect(!r.stdout.contains(keyText) && !r.stderr.contains(keyText))
        #expect(FileManager.default.fileExists(atPath: dir + "/seq") == false)
        #expect(await f.site.devices.count == 1)
    }

    @Test func registerRefusesToOverwriteAProfileUnlessForced() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        let before = fileBytes(f.profileDir() + "/device.key")
        let again = try await f.client(["register", try await f.ticket()])
        expectOneLineError(again, containing: "exists")
        #expect(fileBytes(f.profileDir() + "/device.key") == before)
        let forced = try await f.client(["register", try await f.ticket(), "--force"])
        #expect(forced.code == 0, "\(forced.stderr)")
        #expect(fileBytes(f.profileDir() + "/device.key") != before)
    }

    @Test func profilesKeepAccountsApart() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        _ = try await f.register(profile: "work")
        let a = String(decoding: fileBytes(f.profileDir() + "/device.json") ?? Data(), as: UTF8.self)
        let b = String(decoding: fileBytes(f.profileDir("work") + "/device.json") ?? Data(), as: UTF8.self)
        #expect(!a.isEmpty && !b.isEmpty && a != b)
        #expect(await f.site.devices.count == 2)
        let list = try await f.client(["device", "list", "--profile", "work", "--json"])
        #expect(list.code == 0, "\(list.stderr)")
        #expect((try json(list.stdout)["items"] as? [Any])?.count == 2)
        let bad = try await f.client(["status", "--profile", "../x"])
        #expect(bad.code == 2, "\(bad.stderr)")
    }

    @Test func badTicketsAreOneLineErrors() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        expectOneLineError(try await f.client(["register", "hello"]), containing: "bad user ticket")
        expectOneLineError(try await f.client(["register", #"{"ticket":{"host":"x"}}"#]), containing: "bad user ticket")
        expectOneLineError(try await f.client(["register", "@/nonexistent/ticket"]), containing: "cannot read")
        // A well-formed ticket the site does not know: refused, no profile written.
        let unknown = try UserTicket(
            address: try SiteAddress(host: "127.0.0.1", port: f.port), agent: f.agent, user: nil, token: UserTicket.newToken(), expires: nil)
        expectOneLineError(try await f.client(["register", unknown.link, "--timeout", "5"]), containing: "refused the registration")
        #expect(!FileManager.default.fileExists(atPath: f.profileDir()))
    }

    @Test func noProfileIsAClearError() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        expectOneLineError(try await f.client(["status"]), containing: "no client profile \"default\"")
        expectOneLineError(try await f.client(["tally", "list", "--profile", "other"]), containing: "client register")
    }

    @Test func aClosedPortFailsWithinTheTimeout() async throws {
        let f = try await ClientFixture()
        _ = try await f.register()
        await f.listener.shutdown()
        let start = Date()
        let r = try await f.client(["status", "--timeout", "3"])
        expectOneLineError(r, containing: "cannot reach the site's user port at 127.0.0.1:\(f.port)")
        #expect(Date().timeIntervalSince(start) < 10)
        try? FileManager.default.removeItem(atPath: f.config)
    }

    @Test func aRevokedDeviceHearsTheSilentClose() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        await f.site.revokeAll()
        expectOneLineError(try await f.client(["status", "--timeout", "5"]), containing: "the device may be revoked")
    }

    @Test func statusTallyListAndErrorReplies() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        let status = try await f.client(["status", "--json"])
        #expect(status.code == 0, "\(status.stderr)")
        let s = try json(status.stdout)
        let grant = s["grant"] as? [String: Any]
        #expect(grant?["user"] as? String == "alice")
        #expect(grant?["custody"] as? String == "site")
        #expect(grant?["scopes"] as? [String] == ["read", "request", "pay", "tally", "devices"])
        let human = try await f.client(["status"])
        #expect(human.stdout.contains("custody  site"), "\(human.stdout)")
        let list = try await f.client(["tally", "list"])
        #expect(list.code == 0, "\(list.stderr)")
        #expect(list.stdout.contains("8d3e2a4c") && list.stdout.contains("bob:"), "\(list.stdout)")
        let show = try await f.client(["tally", "show", "8d3e", "--json"])
        #expect(show.code == 0, "\(show.stderr)")
        #expect(try json(show.stdout)["state"] as? String == "open")
        let missing = try await f.client(["tally", "show", "00000000-0000-4000-8000-000000000000"])
        expectOneLineError(missing, containing: "not_found: no such tally")
        let other = try AgentID(publicKey: SigningKey.generate().publicKey)
        expectOneLineError(try await f.client(["tally", "show", "bob:\(other)"]), containing: "no tally matches")
        #expect(try await f.client(["tally", "show", "bob:\(f.agent)"]).code == 0)
        let unscripted = try await f.client(["lift", "list"])
        expectOneLineError(unscripted, containing: "unknown_cmd")
    }

    @Test func payBuildsTheChitAndRetriesWithTheSameUUID() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        await f.site.setDropPays(1)
        let r = try await f.client(["pay", "8d3e2a4c", "12.5", "--memo", "lunch", "--json", "--timeout", "5"])
        #expect(r.code == 0, "\(r.stderr)")
        let pays = await f.site.payRequests
        #expect(pays.count == 2)
        #expect(pays.first == pays.last, "the retry sends the same chit")
        let chit = pays.first
        #expect(chit?["by"] == "stock")
        #expect(chit?["type"] == "tran")
        #expect(chit?["units"] == 12_500)
        #expect(chit?["memo"] == "lunch")
        #expect(chit?["tally"] == .string(f.site.tally))
        #expect(UserRequest.isUUIDv4(chit?["uuid"]?.stringValue ?? ""))
        #expect(await f.site.chits.count == 1)
        #expect(try json(r.stdout)["uuid"] as? String == chit?["uuid"]?.stringValue)
        expectOneLineError(try await f.client(["pay", "8d3e2a4c", "1.2345"]), code: 2, containing: "invalid amount")
    }

    @Test func watchReplaysResumesAndStoresTheSeq() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        #expect(try await f.client(["request", "bob:\(f.agent)", "1"]).code == 0)
        #expect(try await f.client(["request", "8d3e2a4c", "2"]).code == 0)
        let replay = try await f.client(["watch", "--since", "0", "--count", "2"], timeout: 30)
        #expect(replay.code == 0, "\(replay.stderr)")
        let lines = replay.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(try lines.map { try json(String($0))["seq"] as? Int } == [1, 2])
        #expect(String(decoding: fileBytes(f.profileDir() + "/seq") ?? Data(), as: UTF8.self) == "2\n")
        // Resumes after the stored seq: only the new event, once.
        async let live = f.client(["watch", "--count", "1"], timeout: 30)
        try await Task.sleep(nanoseconds: 1_500_000_000)
        #expect(try await f.client(["request", "8d3e2a4c", "3"]).code == 0)
        let next = try await live
        #expect(next.code == 0, "\(next.stderr)")
        let event = try json(next.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(event["seq"] as? Int == 3)
        #expect(event["event"] as? String == "invoice")
        #expect(String(decoding: fileBytes(f.profileDir() + "/seq") ?? Data(), as: UTF8.self) == "3\n")
    }

    @Test func watchReconnectsAndResumesWithoutDuplicates() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        #expect(try await f.client(["request", "8d3e2a4c", "1"]).code == 0)
        async let watching = f.client(["watch", "--since", "0", "--count", "2", "--timeout", "5"], timeout: 40)
        // Wait for the subscription, then drop it and make an event while it is down.
        for _ in 0..<200 where await f.site.subscriberCount == 0 { try await Task.sleep(nanoseconds: 20_000_000) }
        await f.site.kickSubscribers()
        #expect(try await f.client(["request", "8d3e2a4c", "2"]).code == 0)
        let r = try await watching
        #expect(r.code == 0, "\(r.stderr)")
        #expect(try r.stdout.split(separator: "\n").map { try json(String($0))["seq"] as? Int } == [1, 2])
        #expect(r.stderr.contains("reconnecting"), "\(r.stderr)")
        #expect(await f.site.commands.filter { $0 == "events.subscribe" }.count == 2)
    }

    @Test func watchExitsZeroOnSIGTERM() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try chipsiteBinary())
        process.arguments = ["client", "watch"]
        process.environment = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory(), "XDG_CONFIG_HOME": f.config]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        for _ in 0..<250 where await f.site.subscriberCount == 0 { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(await f.site.subscriberCount == 1)
        // A fresh watch stores the site's latest seq once the subscribe's reply is in.
        let seqFile = f.profileDir() + "/seq"
        for _ in 0..<250 where fileBytes(seqFile) == nil { try await Task.sleep(nanoseconds: 20_000_000) }
        process.terminate()
        for _ in 0..<250 where process.isRunning { try await Task.sleep(nanoseconds: 20_000_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
        #expect(String(decoding: fileBytes(seqFile) ?? Data(), as: UTF8.self) == "0\n")
    }

    @Test func keyTakeThenPaySignsOnTheDevice() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        let pass = f.config + "/passphrase"
        try "correct horse\n".write(toFile: pass, atomically: true, encoding: .utf8)
        let take = try await f.client(["key", "take", "--passphrase-file", pass])
        #expect(take.code == 0, "\(take.stderr)")
        #expect(take.stderr.contains("signing key.take proof as the user"), "\(take.stderr)")
        #expect(await f.site.custody == .device)
        let signKey = f.profileDir() + "/sign.key"
        #expect(mode(signKey) == 0o600)
        var seed = f.site.userKey.exportSeed()
        let seedText = Base64URL.encode(seed)
        Crypto.wipe(&seed)
        let stored = String(decoding: fileBytes(signKey) ?? Data(), as: UTF8.self)
        #expect(!stored.contains(seedText) && !take.stdout.contains(seedText) && !take.stderr.contains(seedText))
        let profile = try json(String(decoding: fileBytes(f.profileDir() + "/device.json") ?? Data(), as: UTF8.self))
        #expect(profile["custody"] as? String == "device")
        let show = try await f.client(["key", "show"])
        #expect(show.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == Base64URL.encode(f.site.userKey.publicKey))

        let pay = try await f.client(["pay", "8d3e2a4c", "3", "--passphrase-file", pass])
        #expect(pay.code == 0, "\(pay.stderr)")
        #expect(pay.stderr.contains("chipsite: signing chit as the user: {"), "\(pay.stderr)")
        #expect(await f.site.verifiedSignatures == 1)
        try "wrong\n".write(toFile: pass, atomically: true, encoding: .utf8)
        expectOneLineError(try await f.client(["pay", "8d3e2a4c", "3", "--passphrase-file", pass]), containing: "wrong passphrase")
        #expect(await f.site.verifiedSignatures == 1)
    }

    @Test func rawSendsLinesAndPrintsReplies() async throws {
        let f = try await ClientFixture()
        defer { Task { await f.stop() } }
        _ = try await f.register()
        let input = #"{"cmd":"ping"}"# + "\n" + #"{"id":"mine","cmd":"me.show"}"# + "\n" + #"{"id":"x","cmd":"nope"}"# + "\n"
        let r = try await f.client(["raw", "--timeout", "5"], stdin: input)
        #expect(r.code == 0, "\(r.stderr)")
        let replies = try r.stdout.split(separator: "\n").map { try json(String($0)) }
        #expect(replies.count == 3)
        #expect(replies.contains { $0["id"] as? String == "mine" && $0["ok"] as? Bool == true })
        #expect(replies.contains { ($0["error"] as? [String: Any])?["code"] as? String == "unknown_cmd" })
        let bad = try await f.client(["raw", "--timeout", "5"], stdin: "not json\n")
        #expect(bad.code == 1)
    }
}
