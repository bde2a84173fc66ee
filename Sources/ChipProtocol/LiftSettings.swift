import ChipModel

// The site's lift settings (chipsite config `lift.*`) as typed values, and
// the accept list of 9.8. Pure: the store reads the text, these read it.

/// Which referees the site accepts (9.8, config `lift.referees`).
public enum RefereePolicy: Sendable, Equatable {
    /// The site itself and every site it shares an open tally with.
    case partners
    /// Any referee (the default: a referee cannot move value by itself).
    case any
    /// No referee: the site takes part in no lift across sites.
    case none
    /// Exactly these sites, by agent (sites compare addresses by agent only).
    case list([AgentID])

    /// The most sites a list may name.
    public static let maxListed = 32

    /// Reads `partners`, `any`, `none`, or a comma-separated list of site
    /// addresses `AGENT@HOST:PORT` (spaces around the commas allowed; no
    /// empty entry, no agent twice).
    public init(text: String) throws(ModelError) {
        switch text {
        case "partners": self = .partners
        case "any": self = .any
        case "none": self = .none
        default:
            let entries = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
            guard entries.count <= Self.maxListed else {
                throw .invalid("lift.referees lists at most \(Self.maxListed) sites")
            }
            var agents = [AgentID]()
            for entry in entries {
                guard !entry.isEmpty else {
                    throw .invalid("lift.referees must be partners, any, none or a comma-separated list of AGENT@HOST:PORT")
                }
                let site = try LiftSite(text: entry)
                guard !agents.contains(site.agent) else { throw .invalid("lift.referees names \(site.agent) twice") }
                agents.append(site.agent)
            }
            self = .list(agents)
        }
    }

    /// Whether a lift naming `referee` may go through this site, given this
    /// site's own agent and the agents of the partners it shares an open
    /// tally with. A referee caught equivocating (`dropped`) never is (9.7).
    public func accepts(_ referee: AgentID, site: AgentID, partners: Set<AgentID>, dropped: Set<AgentID> = []) -> Bool {
        if dropped.contains(referee) { return false }
        switch self {
        case .any: return true
        case .none: return false
        case .partners: return referee == site || partners.contains(referee)
        case .list(let agents): return agents.contains(referee)
        }
    }
}

/// The site's lift settings (doc/configuration.md, keys `lift.*`).
public struct LiftSettings: Sendable, Equatable {
    /// Seconds between the engine's looks for circular lifts; 0: none are started automatically.
    public var interval: Int64
    /// Whether this site acts as a referee (`lift.referee`): completes
    /// referee channels from agents it shares no tally with (9.8).
    public var refereeOn: Bool
    /// The referees this site accepts (`lift.referees`).
    public var referees: RefereePolicy
    /// Seconds from a lift's `date` to its `deadline` when this site originates it (1..120).
    public var life: Int64
    /// The smallest lift this site starts, milliCHIPs.
    public var min: Int64

    public static let defaultInterval: Int64 = 60
    public static let defaultLife: Int64 = 60
    public static let lifeRange: ClosedRange<Int64> = 1...120
    public static let maxInterval: Int64 = 86_400
    /// 1 CHIP.
    public static let defaultMin: Int64 = 1000

    public static let defaults = LiftSettings(
        interval: defaultInterval, refereeOn: true, referees: .any, life: defaultLife, min: defaultMin)

    public init(interval: Int64, refereeOn: Bool, referees: RefereePolicy, life: Int64, min: Int64) {
        self.interval = interval
        self.refereeOn = refereeOn
        self.referees = referees
        self.life = life
        self.min = min
    }
}

extension LiftSite {
    /// Reads the text form `AGENT@HOST:PORT` (as `description` writes it; an
    /// IPv6 host in brackets; the port may be left out: 65430).
    public init(text: String) throws(ModelError) {
        let bad = ModelError.invalid("not a site address (AGENT@HOST:PORT): \(Printable.clip(text))")
        guard text.utf8.count <= 400, let at = text.firstIndex(of: "@") else { throw bad }
        let agent = try AgentID(String(text[..<at]))
        let rest = text[text.index(after: at)...]
        var host = Substring(rest)
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let tail = rest[rest.index(after: close)...]
            if !tail.isEmpty {
                guard tail.hasPrefix(":") else { throw bad }
                portText = tail.dropFirst()
            }
        } else if let c = rest.firstIndex(of: ":") {
            // An IPv6 host needs brackets: "::1" must not read as host ":", port 1.
            guard rest.lastIndex(of: ":") == c else { throw bad }
            host = rest[..<c]
            portText = rest[rest.index(after: c)...]
        }
        var port = SiteAddress.defaultPort
        if let portText {
            guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let p = Int(portText)
            else { throw bad }
            port = p
        }
        self.init(agent: agent, address: try SiteAddress(host: String(host), port: port))
    }
}

extension Substring {
    fileprivate var trimmingSpaces: String {
        var s = self
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
