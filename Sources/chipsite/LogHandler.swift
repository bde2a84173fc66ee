import ArgumentParser
import ChipModel
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Log lines on stderr, as text (`2026-11-24T21:00:00.000Z info message key=value`)
/// or as one JSON object per line. Metadata is written as given: callers never
/// put secrets in it.
struct StderrLogHandler: LogHandler {
    enum Format: String, CaseIterable { case text, json }

    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let format: Format

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let time = Timestamp.format(millisecondsSince1970: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
        switch format {
        case .text:
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            writeStderr("\(time) \(event.level) \(event.message)\(fields.isEmpty ? "" : " " + fields)\n")
        case .json:
            var object: [String: JSONValue] = [
                "ts": .string(time), "level": .string(event.level.rawValue),
                "msg": .string("\(event.message)")
            ]
            for (k, v) in all where object[k] == nil { object[k] = .string("\(v)") }
            writeStderr(JSONValue.object(object).canonicalString + "\n")
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension StderrLogHandler.Format: ExpressibleByArgument {}
