import Foundation
import Testing
import TestSupport

/// Things a person does at a terminal: answering the passphrase prompt, and
/// pointing chipsite at a place it may not write.
@Suite struct TerminalTests {
    /// Runs chipsite under a pseudo-terminal (Python's pty module), typing
    /// `answers` one line at a time when a prompt appears; bounded by `timeout`.
    func withTerminal(_ args: [String], answers: [String], timeout: Int = 60) throws -> Result {
        let driver = """
            import os, pty, sys, time, select, termios
            args = sys.argv[1:]
            answers = [a.encode() + b"\\n" for a in os.environ["ANSWERS"].split("\\x1f") if a]
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(args[0], args)
            out = b""; deadline = time.time() + \(timeout)
            while time.time() < deadline:
                r, _, _ = select.select([fd], [], [], 0.2)
                if r:
                    try: chunk = os.read(fd, 4096)
                    except OSError: break
                    if not chunk: break
                    out += chunk
                    if answers and out.rstrip().endswith(b":"):
                        # The prompt comes before echo is turned off (and the input
                        # flushed): answer once echo is off, waiting at most 5 s.
                        quiet_by = time.time() + 5
                        while time.time() < quiet_by and termios.tcgetattr(fd)[3] & termios.ECHO:
                            time.sleep(0.005)
                        os.write(fd, answers.pop(0))
                done, status = os.waitpid(pid, os.WNOHANG)
                if done: break
            else:
                os.kill(pid, 9); print("TIMEOUT"); sys.exit(3)
            _, status = os.waitpid(pid, 0) if not done else (done, status)
            # Drain what the child wrote before it exited (bounded).
            for _ in range(50):
                r, _, _ = select.select([fd], [], [], 0.1)
                if not r: break
                try: chunk = os.read(fd, 4096)
                except OSError: break
                if not chunk: break
                out += chunk
            sys.stdout.write(out.decode(errors="replace"))
            sys.exit(os.waitstatus_to_exitcode(status))
            """
        return try run(
            "/usr/bin/env", ["python3", "-c", driver, try chipsiteBinary()] + args,
            environment: ["ANSWERS": answers.joined(separator: "\u{1f}")], timeout: TimeInterval(timeout + 10))
    }

    @Test func sealWithAPromptedPassphraseThatIsNotEchoed() throws {
        let dir = try TempDir()
        let db = dir.file("site.db")
        let secret = "typed at the prompt"
        let made = try withTerminal(["init", "--db", db, "--host", "h.example", "--seal"], answers: [secret, secret])
        #expect(made.code == 0, "\(made.stdout)")
        #expect(made.stdout.contains("Passphrase again:"))
        #expect(!made.stdout.contains(secret), "the passphrase was echoed")
        #expect(try json(try chipsite(["status", "--db", db, "--json"]).stdout)["sealed"] as? Bool == true)

        let wrong = try withTerminal(["user", "add", "alice", "--name", "Alice", "--db", db], answers: ["nope"])
        #expect(wrong.code == 1)
        #expect(wrong.stdout.contains("chipsite: error: wrong passphrase"))
        let right = try withTerminal(["user", "add", "alice", "--name", "Alice", "--db", db], answers: [secret])
        #expect(right.code == 0, "\(right.stdout)")

        let mismatch = try withTerminal(["init", "--db", dir.file("b.db"), "--host", "h.example", "--seal"], answers: ["one", "two"])
        #expect(mismatch.code == 1)
        #expect(mismatch.stdout.contains("do not match"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("b.db")))
    }

    @Test func readOnlyDirectoryIsAClearError() throws {
        let dir = try TempDir()
        let locked = dir.file("ro")
        try FileManager.default.createDirectory(
            atPath: locked, withIntermediateDirectories: false,
            attributes: [.posixPermissions: 0o555])
        chmod(dir.path, 0o755)
        let args = ["init", "--db", locked + "/site.db", "--host", "h.example"]
        // Root may write anywhere, so as root the binary runs as nobody.
        let r =
            geteuid() == 0
            ? try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", try chipsiteBinary()] + args)
            : try chipsite(args)
        expectOneLineError(r, containing: "Permission denied")
        #expect(!FileManager.default.fileExists(atPath: locked + "/site.db"))
    }
}
