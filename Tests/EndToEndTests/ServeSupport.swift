import Foundation
import Synchronization
import Testing
import TestSupport

/// A running `chipsite serve`, stopped with SIGTERM (bounded) when done.
final class ServeProcess: Sendable {
    let process: Process
    let db: String
    let agent: String
    let port: Int
    private let output: TextBuffer

    /// Starts serve on `db`, listening on 127.0.0.1 (port 0 picks one), and
    /// waits at most `timeout` seconds for its ready line.
    /// `environment` adds to the clean one (the test hooks of doc/testing.md).
    init(db: String, port wanted: Int = 0, extra: [String] = [], environment: [String: String] = [:], timeout: TimeInterval = 20) throws {
        self.db = db
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try chipsiteBinary())
        process.arguments = ["serve", "--db", db, "--listen", "127.0.0.1:\(wanted)", "--log-level", "debug"] + extra
        process.environment = ["PATH": "/usr/bin:/bin", "HOME": NSTemporaryDirectory()].merging(environment) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: "/dev/null") ?? FileHandle.nullDevice
        if let log = FileHandle(forWritingAtPath: db + ".log")
            ?? {
                _ = FileManager.default.createFile(atPath: db + ".log", contents: nil)
                return FileHandle(forWritingAtPath: db + ".log")
            }()
        {
            log.seekToEndOfFile()
            process.standardError = log
        }
        process.standardInput = FileHandle.nullDevice
        let output = TextBuffer()
        out.fileHandleForReading.readabilityHandler = { h in
            let data = h.availableData
            if data.isEmpty { h.readabilityHandler = nil; return }
            output.append(String(decoding: data, as: UTF8.self))
        }
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        var ready: (String, Int)?
        while Date() < deadline, process.isRunning {
            if let line = output.text.split(separator: "\n").first(where: { $0.hasPrefix("chipsite: serving ") }) {
                // chipsite: serving AGENT on HOST:PORT
                let parts = line.split(separator: " ")
                if parts.count == 5, let p = parts[4].split(separator: ":").last.flatMap({ Int($0) }) {
                    ready = (String(parts[2]), p)
                    break
                }
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        guard let ready else {
            process.terminate()
            throw RunError("serve did not start on \(db) within \(timeout) s: \((try? String(contentsOfFile: db + ".log", encoding: .utf8)) ?? "")")
        }
        self.process = process
        self.output = output
        (agent, port) = ready
    }

    /// SIGTERM, then wait at most `timeout` seconds; returns the exit status.
    @discardableResult
    func stop(timeout: TimeInterval = 10) -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit(); return -9 }
        return process.terminationStatus
    }

    /// SIGKILL: the crash case; nothing gets to clean up.
    func crash() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Waits at most `timeout` seconds for the process to end by itself;
    /// true when it did.
    func waitForExit(timeout: TimeInterval) -> Bool {
        waitUntil(timeout: timeout, every: 0.02) { !process.isRunning }
    }

    /// It ended by SIGKILL (kill -9, or a test crash point's own).
    var killed: Bool { !process.isRunning && process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// Text collected from a pipe on another thread.
final class TextBuffer: Sendable {
    private let m = Mutex("")
    func append(_ s: String) { m.withLock { $0 += s } }
    var text: String { m.withLock { $0 } }
}

/// A site for end-to-end tests: its file in `dir`, one user, fixed port.
struct E2ESite {
    let db: String
    let port: Int
    let user: String

    init(dir: TempDir, name: String, user: String, port: Int) throws {
        db = dir.file("\(name).db")
        self.port = port
        self.user = user
        let made = try chipsite(["init", "--db", db, "--host", "127.0.0.1", "--port", "\(port)"])
        guard made.code == 0 else { throw RunError("init: \(made.stderr)") }
        let added = try chipsite(["user", "add", user, "--name", user.capitalized, "--db", db])
        guard added.code == 0 else { throw RunError("user add: \(added.stderr)") }
    }

    func serve(_ environment: [String: String] = [:]) throws -> ServeProcess {
        try ServeProcess(db: db, port: port, environment: environment)
    }

    func cli(_ args: [String], environment: [String: String] = [:]) throws -> Result {
        try chipsite(args + ["--db", db], environment: environment)
    }

    func agent() throws -> String {
        let r = try cli(["status", "--json"])
        guard r.code == 0 else { throw RunError("status on \(db) failed (\(r.code)): \(r.stderr)") }
        return try json(r.stdout)["agent"] as? String ?? ""
    }

    func ticket(_ extra: [String] = [], format: String = "json") throws -> String {
        let r = try cli(["ticket", "tally", user, "--format", format] + extra)
        guard r.code == 0 else { throw RunError("ticket: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func tallies() throws -> [[String: Any]] {
        let r = try cli(["tally", "list", "--json"])
        guard r.code == 0 else { throw RunError("tally list on \(db) failed (\(r.code)): \(r.stderr)") }
        return try json(r.stdout)["tallies"] as? [[String: Any]] ?? []
    }

    func tally(_ id: String) throws -> [String: Any] {
        let r = try cli(["tally", "show", id, "--json"])
        guard r.code == 0 else { throw RunError("tally show \(id) on \(db) failed (\(r.code)): \(r.stderr)") }
        return try json(r.stdout)
    }
}

/// Polls `condition` every 50 ms for at most `seconds` (TestSupport's `waitUntil`).
func eventually(_ seconds: Double = 15, _ condition: () throws -> Bool) rethrows -> Bool {
    try waitUntil(timeout: seconds, every: 0.05, condition)
}

/// A venv with PyPI noiseprotocol and PyNaCl for the independent site peer,
/// made once under .build/peer-venv (bounded in time).
enum PeerVenv {
    static let lock = Mutex(())
    static let path = repoRoot + "/.build/peer-venv"
    static let script = repoRoot + "/Tests/EndToEndTests/Resources/sitepeer.py"

    static func python() throws -> String {
        try lock.withLock { _ in
            let python = path + "/bin/python"
            if FileManager.default.isExecutableFile(atPath: python),
                (try? run(python, ["-c", "import noise, nacl"]).code) == 0
            {
                return python
            }
            let tmp = path + ".tmp-\(getpid())"
            try? FileManager.default.removeItem(atPath: tmp)
            let made = try run("/usr/bin/env", ["python3", "-m", "venv", tmp], timeout: 120)
            guard made.code == 0 else { throw RunError("python3 -m venv failed: \(made.stderr)") }
            let pip = try run(
                tmp + "/bin/python",
                [
                    "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "noiseprotocol", "pynacl"
                ], timeout: 300)
            guard pip.code == 0 else { throw RunError("pip install noiseprotocol pynacl failed: \(pip.stderr)") }
            try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: tmp, toPath: path)
            return python
        }
    }

    /// Runs one sitepeer.py mode and returns its JSON result line.
    static func peer(_ args: [String], timeout: TimeInterval = 60) throws -> [String: Any] {
        let r = try run(try python(), [script] + args, timeout: timeout)
        guard r.code == 0, let last = r.stdout.split(separator: "\n").last else {
            throw RunError("sitepeer \(args.first ?? "") failed (\(r.code)): \(r.stderr)")
        }
        return try json(String(last))
    }
}

/// A digest of every row of every table of an SQLite file (to show nothing changed).
func contentDigest(_ db: String) throws -> String {
    let r = try run(
        "/usr/bin/env",
        [
            "python3", "-c",
            """
            import sqlite3, sys, hashlib
            c = sqlite3.connect(sys.argv[1])
            h = hashlib.sha256()
            for (t,) in c.execute("select name from sqlite_master where type='table' order by name"):
                for row in c.execute('select * from "%s" order by 1' % t):
                    h.update(repr(row).encode())
            print(h.hexdigest())
            """, db
        ])
    guard r.code == 0 else { throw RunError("digest: \(r.stderr)") }
    return r.stdout
}

/// Two sites with an open tally between alice (a) and bob (b), each with
/// its user port on a port of its own (config user.port).
struct UserPortSites {
    let dir: TempDir
    let a: E2ESite, b: E2ESite
    let sa: ServeProcess, sb: ServeProcess
    let tally: String
    let config: String

    init(tally withTally: Bool = true) throws {
        dir = try TempDir()
        a = try E2ESite(dir: dir, name: "a", user: "alice", port: freePort())
        b = try E2ESite(dir: dir, name: "b", user: "bob", port: freePort())
        for site in [a, b] {
            let set = try site.cli(["config", "set", "user.port", "\(freePort())"])
            guard set.code == 0 else { throw RunError("config set user.port: \(set.stderr)") }
        }
        sa = try a.serve()
        sb = try b.serve()
        config = dir.file("config")
        guard withTally else {
            tally = ""
            return
        }
        let request = try json(try a.cli(["tally", "request", "alice", try b.ticket(["--limit", "100"]), "--json"]).stdout)
        tally = request["id"] as? String ?? ""
        let accepted = try a.cli(["tally", "accept", tally])
        guard accepted.code == 0 else { throw RunError("tally accept: \(accepted.stderr)") }
        let b = self.b, tally = self.tally
        guard try eventually(15, { (try b.tally(tally)["state"] as? String) == "open" }) else { throw RunError("the tally did not open") }
    }

    func client(_ args: [String], timeout: TimeInterval = 60) throws -> Result {
        try chipsite(["client"] + args, environment: ["XDG_CONFIG_HOME": config], timeout: timeout)
    }

    /// A user ticket of site a for `user`, in `format`.
    func userTicket(_ user: String = "alice", format: String = "json") throws -> String {
        let r = try a.cli(["user", "ticket", user, "--format", format])
        guard r.code == 0 else { throw RunError("user ticket: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop() {
        sa.stop()
        sb.stop()
    }
}
