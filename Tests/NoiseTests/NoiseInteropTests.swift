import Foundation
import Testing
@_spi(Testing) import Noise
#if canImport(Glibc)
    import Glibc
#endif

struct InteropError: Error, CustomStringConvertible {
    let description: String
}

/// Runs a command with a hard time limit; the process is killed when it runs over.
@discardableResult
func runBounded(_ executable: String, _ arguments: [String], timeout: TimeInterval) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("noise-run-\(UUID().uuidString).log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: log) }
    let handle = try FileHandle(forWritingTo: log)
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let watchdog = DispatchWorkItem { if process.isRunning { process.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
    process.waitUntilExit()
    watchdog.cancel()
    try? handle.close()
    let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    guard process.terminationReason == .exit, process.terminationStatus == 0 else {
        throw InteropError(
            description: "\(executable) \(arguments.joined(separator: " ")) failed "
                + "(status \(process.terminationStatus)): \(output.suffix(2000))")
    }
    return output
}

/// A Python venv with PyPI `noiseprotocol`, made once under `.build/noise-venv`.
enum PythonNoise {
    static let venv = repoRoot.appendingPathComponent(".build/noise-venv")

    /// The venv's python, creating the venv on first use (bounded in time).
    static let python: Result<String, InteropError> = {
        let python = venv.appendingPathComponent("bin/python").path
        if (try? runBounded(python, ["-c", "import noise.connection"], timeout: 60)) != nil {
            return .success(python)
        }
        do {
            let fm = FileManager.default
            try fm.createDirectory(at: venv.deletingLastPathComponent(), withIntermediateDirectories: true)
            let tmp = venv.deletingLastPathComponent().appendingPathComponent("noise-venv.tmp-\(getpid())")
            try? fm.removeItem(at: tmp)
            try runBounded("/usr/bin/env", ["python3", "-m", "venv", tmp.path], timeout: 120)
            let tmpPython = tmp.appendingPathComponent("bin/python").path
            try runBounded(
                tmpPython,
                [
                    "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "noiseprotocol"
                ], timeout: 300)
            try? fm.removeItem(at: venv)
            try fm.moveItem(at: tmp, to: venv)
            try runBounded(python, ["-c", "import noise.connection"], timeout: 60)
            return .success(python)
        } catch let error as InteropError {
            return .failure(error)
        } catch {
            return .failure(InteropError(description: "making the venv: \(error)"))
        }
    }()
}

/// A Python Noise peer over stdin/stdout pipes with 4-byte length-prefixed frames.
final class PythonPeer {
    let process = Process()
    private let toPeer = Pipe(), fromPeer = Pipe()
    private let stderrLog: URL
    private let watchdog: DispatchWorkItem

    init(python: String, arguments: [String], timeout: TimeInterval) throws {
        let script = repoRoot.appendingPathComponent("Tests/NoiseTests/Resources/noise_peer.py").path
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script] + arguments
        process.standardInput = toPeer
        process.standardOutput = fromPeer
        stderrLog = FileManager.default.temporaryDirectory.appendingPathComponent("noise-peer-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: stderrLog.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: stderrLog)
        try process.run()
        let p = process
        watchdog = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
    }

    deinit {
        watchdog.cancel()
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: stderrLog)
    }

    var peerLog: String { (try? String(contentsOf: stderrLog, encoding: .utf8)) ?? "" }

    func send(_ frame: [UInt8]) throws {
        let n = UInt32(frame.count).bigEndian
        let bytes = withUnsafeBytes(of: n) { Array($0) } + frame
        let fd = toPeer.fileHandleForWriting.fileDescriptor
        var off = 0
        while off < bytes.count {
            let w = bytes.withUnsafeBytes { b in b.baseAddress.map { write(fd, $0 + off, b.count - off) } ?? -1 }
            guard w > 0 else { throw InteropError(description: "write to peer failed; peer: \(peerLog)") }
            off += w
        }
    }

    private func readExact(_ count: Int) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: count)
        let fd = fromPeer.fileHandleForReading.fileDescriptor
        var off = 0
        while off < count {
            let r = buf.withUnsafeMutableBytes { b in b.baseAddress.map { read(fd, $0 + off, count - off) } ?? -1 }
            guard r > 0 else { throw InteropError(description: "peer closed or timed out; peer: \(peerLog)") }
            off += r
        }
        return buf
    }

    func receive() throws -> [UInt8] {
        let h = try readExact(4)
        let n = Int(h[0]) << 24 | Int(h[1]) << 16 | Int(h[2]) << 8 | Int(h[3])
        guard n <= 1 << 20 else { throw InteropError(description: "oversized frame \(n)") }
        return try readExact(n)
    }

    func finish() throws {
        try toPeer.fileHandleForWriting.close()
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw InteropError(description: "peer exited \(process.terminationStatus): \(peerLog)")
        }
    }
}

/// Deterministic payloads shared with noise_peer.py: byte j of payload(n, seed) is (seed + j) % 251.
let payloadBase: [UInt8] = (0..<(65519 + 251)).map { UInt8($0 % 251) }
func payload(_ n: Int, _ seed: Int) -> [UInt8] { Array(payloadBase[(seed % 251)..<(seed % 251 + n)]) }

struct InteropCase: CustomTestStringConvertible, Sendable {
    let protocolName: String
    let swiftInitiator: Bool
    var testDescription: String { "\(protocolName) Swift \(swiftInitiator ? "initiator" : "responder")" }
}

@Suite(.serialized) struct NoiseInteropTests {
    static let cases: [InteropCase] = ["IK", "KK", "N"].flatMap { p in
        [true, false].map { InteropCase(protocolName: "Noise_\(p)_25519_ChaChaPoly_BLAKE2b", swiftInitiator: $0) }
    }
    static let sizes = [0, 1, 1000, 65519]
    static let transportMessages = 1000

    @Test(.timeLimit(.minutes(5)), arguments: cases)
    func interop(_ c: InteropCase) throws {
        signal(SIGPIPE, SIG_IGN)
        let python = try PythonNoise.python.get()
        let proto = try NoiseProtocol(name: c.protocolName)
        let pattern = proto.pattern
        let usesInitiatorStatic = pattern.name != "N"
        let initiatorStatic = usesInitiatorStatic ? KeyPair.generate() : nil
        let responderStatic = KeyPair.generate()
        let swiftStatic = c.swiftInitiator ? initiatorStatic : responderStatic
        let peerStatic = c.swiftInitiator ? responderStatic : initiatorStatic
        // Remote statics known in advance: the responder's (IK, KK, N) for the initiator,
        // the initiator's (KK) for the responder.
        let initiatorKnows = responderStatic.publicKey
        let responderKnows = pattern.initiatorPreMessage.contains(.s) ? initiatorStatic?.publicKey : nil
        let swiftRemote = c.swiftInitiator ? initiatorKnows : responderKnows
        let peerRemote = c.swiftInitiator ? responderKnows : initiatorKnows

        // Handshake payload sizes per round: the round's size, capped to what each message can carry.
        var rounds: [[Int]] = []
        for size in Self.sizes {
            let probe = try Handshake(
                protocol: proto, initiator: true, localStatic: initiatorStatic,
                remoteStatic: initiatorKnows, ephemeral: nil)
            let r = try Handshake(
                protocol: proto, initiator: false, localStatic: responderStatic,
                remoteStatic: responderKnows, ephemeral: nil)
            var perMessage: [Int] = []
            while !probe.isComplete {
                let (w, rd) = probe.isWriteTurn ? (probe, r) : (r, probe)
                perMessage.append(min(size, w.maxPayloadCount))
                _ = try rd.readMessage(try w.writeMessage([]))
            }
            rounds.append(perMessage)
        }
        let spec = rounds.enumerated().map { i, m in
            m.map(String.init).joined(separator: ",") + ":" + String(i == rounds.count - 1 ? Self.transportMessages : 4)
        }.joined(separator: ";")

        let peer = try PythonPeer(
            python: python,
            arguments: [
                c.protocolName, c.swiftInitiator ? "responder" : "initiator",
                peerStatic.map { hex($0.privateKey) } ?? "-", peerRemote.map { hex($0) } ?? "-", spec
            ], timeout: 240)

        for (r, perMessage) in rounds.enumerated() {
            let hs = try Handshake(
                pattern: pattern, initiator: c.swiftInitiator, prologue: [],
                localStatic: swiftStatic, remoteStatic: swiftRemote)
            var i = 0
            while !hs.isComplete {
                let want = payload(perMessage[i], 1000 * r + i)
                if hs.isWriteTurn {
                    try peer.send(try hs.writeMessage(want))
                } else {
                    let got = try hs.readMessage(try peer.receive())
                    #expect(got == want, "\(c.testDescription) round \(r) handshake message \(i)")
                }
                i += 1
            }
            let transport = try hs.finish()
            #expect(try peer.receive() == transport.handshakeHash, "handshake hash, round \(r)")
            if c.swiftInitiator || pattern.name == "KK" {
                #expect(transport.remoteStaticKey == peerStatic?.publicKey)
            }
            let count = r == rounds.count - 1 ? Self.transportMessages : 4
            for k in 0..<count {
                let size = Self.sizes[k % 4]
                let a = payload(size, 7 + k), b = payload(size, 8 + k)
                if c.swiftInitiator {
                    try peer.send(try transport.encrypt(a))
                    if !pattern.isOneWay { #expect(try transport.decrypt(try peer.receive()) == b) }
                } else {
                    #expect(try transport.decrypt(try peer.receive()) == a)
                    if !pattern.isOneWay { try peer.send(try transport.encrypt(b)) }
                }
            }
        }
        #expect(try peer.receive() == Array("done".utf8))
        try peer.finish()
    }
}
