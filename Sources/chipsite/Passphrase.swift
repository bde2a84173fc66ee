import ChipModel

#if canImport(Glibc)
    import Glibc
#endif

/// Reading a passphrase from a file or, without echo, from the terminal.
enum Passphrase {
    /// Largest passphrase file accepted: a passphrase, not a document.
    static let maxFileBytes = 4096

    static var hasTerminal: Bool { isatty(STDIN_FILENO) == 1 }

    /// The first line of `file`, without its line ending. Empty is an error.
    static func read(file: String) throws -> [UInt8] {
        guard let f = fopen(file, "rb") else {
            throw CLIError("cannot read passphrase file \(file): \(String(cString: strerror(errno)))")
        }
        defer { fclose(f) }
        var buffer = [UInt8](repeating: 0, count: maxFileBytes + 1)
        let n = fread(&buffer, 1, buffer.count, f)
        defer { Crypto.wipe(&buffer) }
        guard n <= maxFileBytes else { throw CLIError("passphrase file \(file) is larger than \(maxFileBytes) bytes") }
        var line = Array(buffer[0..<n])
        if let nl = line.firstIndex(of: 0x0A) { line.removeSubrange(nl...) }
        if line.last == 0x0D { line.removeLast() }
        guard !line.isEmpty else { throw CLIError("passphrase file \(file) is empty") }
        return line
    }

    /// Asks on the terminal with echo off; with `confirm`, asks twice.
    static func prompt(confirm: Bool) throws -> [UInt8] {
        let first = try ask("Passphrase: ")
        guard !first.isEmpty else { throw CLIError("the passphrase is empty") }
        if confirm {
            let second = try ask("Passphrase again: ")
            guard Crypto.constantTimeEqual(first, second) else { throw CLIError("the passphrases do not match") }
        }
        return first
    }

    private static func ask(_ prompt: String) throws -> [UInt8] {
        writeStderr(prompt)
        var saved = termios()
        let haveTerm = tcgetattr(STDIN_FILENO, &saved) == 0
        if haveTerm {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        }
        defer {
            if haveTerm { tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved) }
            writeStderr("\n")
        }
        var line = [UInt8]()
        while line.count <= maxFileBytes {
            let c = getchar()
            if c == EOF || c == 0x0A { break }
            line.append(UInt8(truncatingIfNeeded: c))
        }
        if line.last == 0x0D { line.removeLast() }
        return line
    }
}
