import ArgumentParser
import ChipModel
import ChipProtocol
import ChipStore

#if canImport(Glibc)
    import Glibc
#endif

/// Entry point: runs the command and turns every failure into one line,
/// `chipsite: error: …`, with exit code 1 (2 for usage errors). A person
/// never sees a stack trace for a mistake of theirs.
@main
enum Main {
    static func main() async {
        do {
            var command = try Chipsite.parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as StoreError {
            fail(error.description)
        } catch let error as ModelError {
            fail(error.description)
        } catch let error as CLIError {
            fail(error.description)
        } catch let error as UserError {
            // A refusal the store shares with the user port (10.5), e.g. an invoice answered meanwhile.
            fail(error.message)
        } catch {
            let code = Chipsite.exitCode(for: error)
            var message = Chipsite.fullMessage(for: error)
            // A usage error found by a command's run() points to that
            // command's --help, not the root's.
            if error is ValidationError, !message.contains("See '") || message.contains("See 'chipsite --help'") {
                message = "Error: \(error)\nSee '\(commandPath(CommandLine.arguments)) --help' for more information."
            }
            if code == .success {
                if !message.isEmpty { print(message) }
                exit(0)
            }
            // `ExitCode(1)` (doctor, tally verify) has said its piece already.
            if !message.isEmpty { writeStderr(usageLine(message) + "\n") }
            exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }

    /// The parser's message (error, help excerpt, usage, "See …" hint) as one
    /// line: the error, then where to read more.
    static func usageLine(_ message: String) -> String {
        let lines = message.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        var first = lines.first ?? "invalid command line"
        if first.hasPrefix("Error: ") { first.removeFirst("Error: ".count) }
        var line = "chipsite: error: " + first
        if let see = lines.last(where: { $0.contains("See '") }), let open = see.firstIndex(of: "'"),
            let close = see[see.index(after: open)...].firstIndex(of: "'")
        {
            line += " (see `\(see[see.index(after: open)..<close])`)"
        }
        return line
    }

    /// `chipsite` and the subcommand names at the start of `arguments`.
    static func commandPath(_ arguments: [String]) -> String {
        var command: any ParsableCommand.Type = Chipsite.self
        var path = ["chipsite"]
        for argument in arguments.dropFirst() {
            guard let next = command.configuration.subcommands.first(where: { $0._commandName == argument }) else { break }
            path.append(argument)
            command = next
        }
        return path.joined(separator: " ")
    }

    static func fail(_ message: String) -> Never {
        writeStderr("chipsite: error: \(message)\n")
        exit(1)
    }
}

/// Writes straight to file descriptor 2 (the C `stderr` global is not
/// concurrency-safe in Swift 6).
func writeStderr(_ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        if n <= 0 { return }
        bytes = bytes.dropFirst(n)
    }
}

/// A mistake in what a person asked for, reported as one line.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
