import ArgumentParser
import ChipModel
import ChipProtocol
import Dispatch
import Foundation
import Noise

#if canImport(Glibc)
    import Glibc
#endif

/// Exits 0 on SIGINT or SIGTERM (`client watch`, `client raw`): what was
/// printed is whole lines and the stored `seq` is written atomically.
enum ClientSignals {
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    static func exitQuietlyOnInterrupt() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { exit(0) }
            source.resume()
            sources.append(source)
        }
    }
}

/// Whole lines to stdout, one writer at a time, unbuffered (a pipe reader
/// sees each line as it comes).
final class LineWriter: Sendable {
    private let lock = NSLock()
    func line(_ json: JSONValue) {
        lock.lock()
        defer { lock.unlock() }
        writeStdout(json.canonicalString + "\n")
    }
}

extension ClientCommand {
    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the account's events as JSON lines, reconnecting and resuming from the last seq.",
            discussion: """
                Subscribes (events.subscribe) and prints each event as one JSON line. The \
                highest seq processed is stored in the profile after each event; on a dropped \
                session the client reconnects (backoff from 1 s to at most 30 s) and resumes \
                after it, so no event is printed twice. A `resync` event (the site no longer \
                keeps the events asked for) is printed and the stored seq set to its seq. \
                Without --since and a stored seq, only new events are printed. Exits 0 on \
                SIGINT or SIGTERM, or after --count events.
                """)

        @Option(help: ArgumentHelp("Replay the events after this seq (default: the stored seq).", valueName: "seq"))
        var since: Int64?

        @Option(help: ArgumentHelp("Only these topics, comma-separated: tally, chit, invoice, lift, device, sign.", valueName: "list"))
        var topics: String?

        @Option(help: ArgumentHelp("Exit 0 after this many events.", valueName: "n"))
        var count: Int?

        @OptionGroup var options: ClientOptions

        static let maxBackoff: Double = 30

        func validate() throws {
            if let since, since < 0 { throw ValidationError("--since must be 0 or more") }
            if let count, count < 1 { throw ValidationError("--count must be 1 or more") }
            _ = try parsedTopics()
        }

        func parsedTopics() throws -> Set<UserTopic>? {
            guard let topics else { return nil }
            var set = Set<UserTopic>()
            for name in topics.split(separator: ",", omittingEmptySubsequences: false) {
                guard let t = UserTopic(rawValue: String(name)) else {
                    throw ValidationError("unknown topic \(Printable.quote(String(name))): use tally, chit, invoice, lift, device, sign")
                }
                set.insert(t)
            }
            return set
        }

        func run() async throws {
            let state = try options.state()
            let (profile, key) = try state.load()
            let wantedTopics = try parsedTopics()
            let stored = try state.seq()
            var cursor = UserEventCursor(highest: since ?? stored ?? 0)
            var resume = since != nil || stored != nil
            let out = LineWriter()
            var printed = 0
            var backoff = 1.0
            ClientSignals.exitQuietlyOnInterrupt()
            while true {
                let connection: ClientConnection
                do {
                    connection = try await ClientConnection.open(profile, key: key, timeout: options.timeout)
                } catch {
                    writeStderr("chipsite: \(error); retrying in \(ClientFailure.seconds(backoff))\n")
                    try? await Task.sleep(nanoseconds: UInt64(backoff * 1e9))
                    backoff = min(Self.maxBackoff, backoff * 2)
                    continue
                }
                let request: UserRequest
                do {
                    request = try UserRequest(
                        id: ClientIDs.next(), command: .eventsSubscribe(topics: wantedTopics, since: resume ? cursor.highest : nil))
                } catch { throw CLIError("\(error.code.rawValue): \(error.message)") }
                let outcome = await connection.send(request.json, id: request.id, timeout: options.timeout)
                if case .reply(let reply) = outcome {
                    // An error answer (a scope, a bad topic) will not mend itself.
                    let data = try ClientFailure.check(outcome, timeout: options.timeout)
                    _ = reply
                    if !resume, let latest = data["seq"]?.integerValue {
                        cursor.resync(latest: latest)
                        try state.store(seq: latest)
                        resume = true
                    }
                    writeStderr("chipsite: watching \(profile.user.value) at \(profile.address) after seq \(cursor.highest)\n")
                    backoff = 1
                    let pinger = Task {
                        while !Task.isCancelled {
                            try? await Task.sleep(nanoseconds: UInt64(UserPortDefaults.pingInterval * 1e9))
                            if Task.isCancelled { break }
                            _ = await connection.post(["id": .string(ClientIDs.next()), "cmd": "ping"])
                        }
                    }
                    for await event in connection.events {
                        guard let seq = event["seq"]?.integerValue else { continue }
                        if event["event"] == "resync" {
                            cursor.resync(latest: seq)
                        } else if !cursor.accept(seq) {
                            continue
                        }
                        out.line(event)
                        try state.store(seq: cursor.highest)
                        printed += 1
                        if let count, printed >= count {
                            pinger.cancel()
                            await connection.close()
                            return
                        }
                    }
                    pinger.cancel()
                }
                await connection.close()
                writeStderr("chipsite: the session ended; reconnecting in \(ClientFailure.seconds(backoff))\n")
                try? await Task.sleep(nanoseconds: UInt64(backoff * 1e9))
                backoff = min(Self.maxBackoff, backoff * 2)
            }
        }
    }

    struct Raw: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send JSON commands from stdin; print every reply and event as one JSON line.",
            discussion: """
                Each stdin line is one request, {"cmd":…,"args":…} (protocol section 10.5); an id \
                is assigned when it has none. Replies and events are printed as they come. Exits \
                when stdin ends and every request has its reply, or when --timeout passes \
                without one (exit 1).
                """)

        @OptionGroup var options: ClientOptions

        func run() async throws {
            let state = try options.state()
            let (profile, key) = try state.load()
            let connection = try await ClientConnection.open(profile, key: key, timeout: options.timeout)
            let out = LineWriter()
            ClientSignals.exitQuietlyOnInterrupt()
            let events = Task {
                for await event in connection.events { out.line(event) }
            }
            let (lines, sink) = AsyncStream.makeStream(of: String.self)
            Thread.detachNewThread {
                while let line = readLine(strippingNewline: true) { sink.yield(line) }
                sink.finish()
            }
            let failures = Failures()
            var pending = Set<String>()
            await withTaskGroup(of: Void.self) { group in
                var number = 0
                for await line in lines {
                    number += 1
                    if line.trimmingSpaces.isEmpty { continue }
                    guard
                        var o = (try? JSONValue(parsing: line, limits: JSONLimits(maxDepth: UserPortDefaults.maxJSONDepth, maxBytes: 65519)))?
                            .objectValue
                    else {
                        writeStderr("chipsite: line \(number) is not a JSON object: not sent\n")
                        failures.add()
                        continue
                    }
                    if o["id"] == nil { o["id"] = .string(ClientIDs.next()) }
                    guard let id = o["id"]?.stringValue, !pending.contains(id) else {
                        // Not matchable (not a string id, or one still pending): send, and print what comes.
                        _ = await connection.post(.object(o))
                        continue
                    }
                    pending.insert(id)
                    let message = JSONValue.object(o)
                    group.addTask {
                        switch await connection.send(message, id: id, timeout: options.timeout) {
                        case .reply(let reply): out.line(reply)
                        case .timedOut:
                            writeStderr("chipsite: no reply to \(Printable.quote(id)) within \(ClientFailure.seconds(options.timeout))\n")
                            failures.add()
                        case .closed:
                            failures.add()
                        }
                    }
                }
                await group.waitForAll()
            }
            let closed = await connection.isClosed
            await connection.close()
            events.cancel()
            if closed, failures.count > 0 { throw CLIError(silentCloseMessage) }
            if failures.count > 0 { throw CLIError("\(failures.count) request(s) got no reply or were not sent") }
        }

        final class Failures: Sendable {
            private let box = NSLock()
            nonisolated(unsafe) private var n = 0
            func add() {
                box.lock()
                n += 1
                box.unlock()
            }
            var count: Int {
                box.lock()
                defer { box.unlock() }
                return n
            }
        }
    }

    struct Key: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hold the user's signing key on this device (custody device).",
            discussion: """
                `key take` fetches the key the site holds for the user, sealed to this device \
                (me.key.take), keeps it sealed with a passphrase in sign.key, and in a second \
                session proves it and has the site erase its copy: from then on this client \
                signs for the user and the site signs nothing. `key new` makes the first key of \
                a user added with `--custody device` (me.signkey). `key show` prints the public key.
                """,
            subcommands: [Take.self, New.self, Show.self])

        struct Take: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Take the site-held signing key (me.key.take); there is no way back.")

            @OptionGroup var options: ClientOptions
            @OptionGroup var passphrase: PassphraseOptions

            func run() async throws {
                var c = try await options.connect()
                let grant = c.connection.grant
                var taken: SigningKey?
                if grant.custody == .site {
                    let me = try await c.call(.meShow)
                    guard let jwk = me["cert"]?["public"], let certKey = try? UserKeyJWK.publicKey(from: jwk) else {
                        throw CLIError("me.show carries no certificate key")
                    }
                    let fetched = try await c.call(.meKeyTakeFetch)
                    guard let sealed = fetched["key"]?.stringValue else { throw CLIError("me.key.take fetch gave no key") }
                    var secret = try c.state.deviceSecret()
                    defer { Crypto.wipe(&secret) }
                    var seed = try KeyTransfer.open(sealed, publicKey: c.key.publicKey, secretKey: secret)
                    defer { Crypto.wipe(&seed) }
                    let key = try SigningKey(seed: seed)
                    guard key.publicKey == certKey else {
                        throw CLIError("the key the site sent is not the one in the user's certificate: not taking it")
                    }
                    taken = key
                    guard var p = try passphrase.obtain(confirm: true) else {
                        throw CLIError("a passphrase is needed to seal the key: give --passphrase-file or run on a terminal")
                    }
                    defer { Crypto.wipe(&p) }
                    try ClientSignKey.save(seed: seed, user: c.profile.user, passphrase: p, state: c.state)
                } else if !ClientSignKey.exists(c.state) {
                    throw CLIError("the user's key is already held by a device: copy its sign.key into \(c.state.directory)")
                }
                // The confirmation goes in a later session (10.7): the key has survived a reconnect.
                await c.close()
                c.connection = try await ClientConnection.open(c.profile, key: c.key, timeout: options.timeout)
                let key: SigningKey
                if let taken {
                    key = taken
                } else {
                    // A confirmation that did not go through before: the key is in sign.key.
                    guard var p = try passphrase.obtain() else { throw CLIError("a passphrase is needed to open sign.key") }
                    defer { Crypto.wipe(&p) }
                    key = try ClientSignKey.open(c.state, user: c.profile.user, passphrase: p)
                }
                let proof: JSONValue = [
                    "act": "key.take", "cuid": .string(c.profile.user.value), "date": .string(nowTimestamp()),
                    "device": .string(c.profile.device.description)
                ]
                showSigning("key.take proof", proof)
                let command = try deviceCommand("me.key.take", ["step": "confirm", "proof": proof, "sign": .string(signature(proof, with: key))])
                let data = try await c.callRetrying(command, idem: TallyCore.newUUID())
                await c.close()
                var profile = c.profile
                profile.custody = .device
                try c.state.save(profile)
                options.show(data) { print("This device now holds \(profile.user.value)'s signing key (custody device); the site erased its copy") }
            }
        }

        struct New: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Make the first signing key of a device-custody user (me.signkey).")

            @OptionGroup var options: ClientOptions
            @OptionGroup var passphrase: PassphraseOptions

            func run() async throws {
                let state = try options.state()
                guard !ClientSignKey.exists(state) else { throw CLIError("\(state.path(ClientState.signKeyFile)) exists already") }
                var c = try await options.connect()
                let key = SigningKey.generate()
                var seed = key.exportSeed()
                defer { Crypto.wipe(&seed) }
                guard var p = try passphrase.obtain(confirm: true) else {
                    throw CLIError("a passphrase is needed to seal the key: give --passphrase-file or run on a terminal")
                }
                defer { Crypto.wipe(&p) }
                try ClientSignKey.save(seed: seed, user: c.profile.user, passphrase: p, state: state)
                let object: JSONValue = [
                    "agent": .string(c.profile.agent.description), "cuid": .string(c.profile.user.value),
                    "public": UserKeyJWK.json(publicKey: key.publicKey), "date": .string(nowTimestamp())
                ]
                showSigning("new key", object)
                let data: JSONValue
                do {
                    let command = try deviceCommand("me.signkey", ["key": object, "sign": .string(signature(object, with: key))])
                    data = try await c.callRetrying(command, idem: TallyCore.newUUID())
                } catch {
                    unlink(state.path(ClientState.signKeyFile))
                    throw error
                }
                await c.close()
                options.show(data) { print("Set \(c.profile.user.value)'s signing key: \(Base64URL.encode(key.publicKey))") }
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show the public key of the signing key this profile holds.")

            @OptionGroup var options: ClientOptions

            func run() async throws {
                let state = try options.state()
                _ = try state.load()
                let key = Base64URL.encode(try ClientSignKey.publicKey(state))
                options.show(["public": .string(key)]) { print(key) }
            }
        }
    }
}
