import ChipModel
import Noise

#if canImport(Glibc)
    import Glibc
#endif

/// What `chipsite client` keeps for one account (a profile):
/// `$XDG_CONFIG_HOME/chipsite/client/<profile>/` (default `~/.config/…`),
/// mode 0700, holding
/// - `device.json`: the site (host, port, agent), the user, the device id
///   and name, the custody last seen;
/// - `device.key`: the device's X25519 private key, base64url, mode 0600;
/// - `seq`: the highest event `seq` processed (`client watch`);
/// - `sign.key`: for a `device` custody user, the user's Ed25519 seed
///   sealed under a passphrase (as the site seals its own keys), mode 0600.
///
/// Every file is written to a temporary name and renamed, so a crash leaves
/// the old file or the new one, never half of one.
struct ClientProfile: Sendable, Equatable {
    static let format = "chipsite-client/1"

    var address: SiteAddress
    var agent: AgentID
    var user: CUID
    var device: DeviceID
    var deviceName: String
    /// `site` or `device`, as the last session said.
    var custody: UserCustody
    var registered: String

    var json: JSONValue {
        [
            "format": .string(Self.format), "host": .string(address.host), "port": .integer(Int64(address.port)),
            "agent": .string(agent.description), "user": .string(user.value), "device": .string(device.description),
            "name": .string(deviceName), "custody": .string(custody.rawValue), "registered": .string(registered)
        ]
    }

    init(
        address: SiteAddress, agent: AgentID, user: CUID, device: DeviceID, deviceName: String, custody: UserCustody,
        registered: String
    ) {
        self.address = address
        self.agent = agent
        self.user = user
        self.device = device
        self.deviceName = deviceName
        self.custody = custody
        self.registered = registered
    }

    init(json value: JSONValue) throws {
        guard value["format"]?.stringValue == Self.format, let host = value["host"]?.stringValue,
            let port = value["port"]?.integerValue, let agent = value["agent"]?.stringValue,
            let user = value["user"]?.stringValue, let device = value["device"]?.stringValue,
            let name = value["name"]?.stringValue, let custody = value["custody"]?.stringValue.flatMap(UserCustody.init(rawValue:)),
            let registered = value["registered"]?.stringValue, let p = Int(exactly: port)
        else { throw CLIError("device.json is not a chipsite client profile") }
        self.init(
            address: try SiteAddress(host: host, port: p), agent: try AgentID(agent), user: try CUID(user),
            device: try DeviceID(device), deviceName: name, custody: custody, registered: registered)
    }
}

/// The files of one profile.
struct ClientState: Sendable {
    static let profileFile = "device.json"
    static let keyFile = "device.key"
    static let seqFile = "seq"
    static let signKeyFile = "sign.key"
    /// Largest state file read (they are a few hundred bytes).
    static let maxFileBytes = 16 * 1024

    let name: String
    let directory: String

    /// A profile name: 1-64 of A-Z a-z 0-9 . _ -, not starting with a dot.
    static func validate(profile: String) throws {
        let ok =
            (1...64).contains(profile.utf8.count) && profile.first != "."
            && profile.unicodeScalars.allSatisfy { c in
                c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "." || c == "_" || c == "-")
            }
        guard ok else { throw CLIError("a profile name is 1-64 of A-Z a-z 0-9 . _ - and does not start with a dot") }
    }

    /// `$XDG_CONFIG_HOME/chipsite/client` (an absolute XDG_CONFIG_HOME only, as
    /// the XDG spec says), else `$HOME/.config/chipsite/client`.
    static func root(environment: [String: String]) throws -> String {
        if let xdg = environment["XDG_CONFIG_HOME"], xdg.hasPrefix("/") { return xdg + "/chipsite/client" }
        let home =
            environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? getpwuid(getuid()).flatMap { $0.pointee.pw_dir.map { String(cString: $0) } }
        guard let home else { throw CLIError("neither XDG_CONFIG_HOME nor HOME is set: cannot find the client's state") }
        return home + "/.config/chipsite/client"
    }

    init(profile: String, environment: [String: String] = Environment.all) throws {
        try Self.validate(profile: profile)
        name = profile
        directory = try Self.root(environment: environment) + "/" + profile
    }

    func path(_ file: String) -> String { directory + "/" + file }

    var exists: Bool { access(path(Self.profileFile), F_OK) == 0 || access(path(Self.keyFile), F_OK) == 0 }

    /// The profile and its device key, or a clear error when there is none.
    func load() throws -> (ClientProfile, KeyPair) {
        guard exists else {
            throw CLIError(
                "no client profile \(Printable.quote(name)) (\(directory)): register this device first with `chipsite client register TICKET`"
            )
        }
        let text = try Self.readText(path(Self.profileFile))
        let profile = try ClientProfile(json: try JSONValue(parsing: text, limits: JSONLimits(maxDepth: 4, maxBytes: Self.maxFileBytes)))
        return (profile, try loadKey())
    }

    func loadKey() throws -> KeyPair {
        let keyPath = path(Self.keyFile)
        var st = stat()
        guard stat(keyPath, &st) == 0 else { throw CLIError("cannot read \(keyPath): \(String(cString: strerror(errno)))") }
        guard st.st_mode & 0o077 == 0 else {
            throw CLIError("\(keyPath) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))): chmod 600 it")
        }
        var secret = try deviceSecret()
        defer { Crypto.wipe(&secret) }
        do { return try KeyPair(privateKey: secret) } catch { throw CLIError("\(keyPath) does not hold a device key") }
    }

    /// The device key's 32 private bytes (the caller wipes them).
    func deviceSecret() throws -> [UInt8] {
        let keyPath = path(Self.keyFile)
        var text = Array(try Self.readText(keyPath).utf8)
        defer { Crypto.wipe(&text) }
        while let last = text.last, last == 0x0A || last == 0x0D || last == 0x20 { text.removeLast() }
        guard let secret = Base64URL.decode(String(decoding: text, as: UTF8.self)), secret.count == 32 else {
            throw CLIError("\(keyPath) does not hold a device key")
        }
        return secret
    }

    /// Writes a new profile: the directory (0700), the key (0600) first, then
    /// `device.json`, and forgets any old `seq` and signing key.
    func create(_ profile: ClientProfile, deviceSecret: [UInt8]) throws {
        try Self.makeDirectory(directory)
        var keyText = Array((Base64URL.encode(deviceSecret) + "\n").utf8)
        defer { Crypto.wipe(&keyText) }
        try Self.writeAtomically(path(Self.keyFile), keyText, mode: 0o600)
        unlink(path(Self.seqFile))
        unlink(path(Self.signKeyFile))
        try save(profile)
    }

    func save(_ profile: ClientProfile) throws {
        try Self.writeAtomically(path(Self.profileFile), Array((profile.json.prettyString + "\n").utf8), mode: 0o600)
    }

    /// The stored `seq` (nil when there is none yet).
    func seq() throws -> Int64? {
        guard access(path(Self.seqFile), F_OK) == 0 else { return nil }
        let text = try Self.readText(path(Self.seqFile)).trimmingSpaces
        guard let n = Int64(text), n >= 0 else { throw CLIError("\(path(Self.seqFile)) does not hold an event seq") }
        return n
    }

    func store(seq: Int64) throws {
        try Self.writeAtomically(path(Self.seqFile), Array("\(seq)\n".utf8), mode: 0o600)
    }

    // MARK: Files

    /// Creates `path` and its missing parents; the last one gets mode 0700
    /// (an existing one is tightened to 0700).
    static func makeDirectory(_ path: String) throws {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, prefix == path ? 0o700 : 0o755) != 0, errno != EEXIST {
                throw CLIError("cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
        guard chmod(path, 0o700) == 0 else { throw CLIError("cannot set the mode of \(path): \(String(cString: strerror(errno)))") }
    }

    /// Writes `bytes` to a temporary file of `mode` beside `path`, syncs it and
    /// renames it over `path`.
    static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
        let temporary = path + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw CLIError("cannot write \(path): \(String(cString: strerror(errno)))") }
        var ok = fchmod(fd, mode) == 0
        var rest = bytes[...]
        while ok, !rest.isEmpty {
            let n = rest.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { ok = false } else { rest = rest.dropFirst(n) }
        }
        if ok { ok = fsync(fd) == 0 }
        let why = String(cString: strerror(errno))
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CLIError("cannot write \(path): \(why)")
        }
    }

    static func readText(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 { throw CLIError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            out += buffer[0..<n]
            guard out.count <= maxFileBytes else { throw CLIError("\(path) is larger than \(maxFileBytes) bytes") }
        }
        Crypto.wipe(&buffer)
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}

/// A `device` custody user's signing key as the client keeps it (10.7):
/// `sign.key`, JSON with the Ed25519 seed sealed as the site seals its own
/// keys (Argon2id of a passphrase, XChaCha20-Poly1305, a label naming the
/// user as associated data), mode 0600. The seed never leaves this file in
/// the clear and is never printed.
enum ClientSignKey {
    static let format = "chipsite-client-key/1"

    static func label(_ user: CUID) -> String { "chipsite client signing key \(user.value)" }

    static func exists(_ state: ClientState) -> Bool { access(state.path(ClientState.signKeyFile), F_OK) == 0 }

    /// Seals `seed` under `passphrase` and writes it.
    static func save(seed: [UInt8], user: CUID, passphrase: [UInt8], state: ClientState, cost: PassphraseCost = .moderate) throws {
        let key = try SigningKey(seed: seed)
        let salt = Crypto.randomBytes(SealingKey.saltLength)
        let sealing = try SealingKey(passphrase: passphrase, salt: salt, cost: cost)
        let o: JSONValue = [
            "format": .string(format), "user": .string(user.value), "public": .string(Base64URL.encode(key.publicKey)),
            "salt": .string(Base64URL.encode(salt)), "ops": .integer(Int64(cost.opsLimit)), "mem": .integer(Int64(cost.memLimit)),
            "sealed": .string(Base64URL.encode(StoredSecret.seal(seed, with: sealing, label: label(user))))
        ]
        try ClientState.writeAtomically(state.path(ClientState.signKeyFile), Array((o.prettyString + "\n").utf8), mode: 0o600)
    }

    /// The public key stored beside the sealed seed (no passphrase needed).
    static func publicKey(_ state: ClientState) throws -> [UInt8] {
        let o = try read(state)
        guard let p = o["public"]?.stringValue.flatMap(Base64URL.decode), p.count == 32 else {
            throw CLIError("\(state.path(ClientState.signKeyFile)) is not a client signing key")
        }
        return p
    }

    /// Opens the key with `passphrase`; a wrong one is an error.
    static func open(_ state: ClientState, user: CUID, passphrase: [UInt8]) throws -> SigningKey {
        let path = state.path(ClientState.signKeyFile)
        let o = try read(state)
        guard o["user"]?.stringValue == user.value, let salt = o["salt"]?.stringValue.flatMap(Base64URL.decode),
            let ops = o["ops"]?.integerValue, let mem = o["mem"]?.integerValue, ops > 0, mem > 0,
            let sealed = o["sealed"]?.stringValue.flatMap(Base64URL.decode), let pub = o["public"]?.stringValue.flatMap(Base64URL.decode)
        else { throw CLIError("\(path) is not this profile's signing key") }
        let sealing = try SealingKey(passphrase: passphrase, salt: salt, cost: PassphraseCost(opsLimit: UInt64(ops), memLimit: UInt64(mem)))
        var seed = try StoredSecret.open(sealed, with: sealing, label: label(user))
        defer { Crypto.wipe(&seed) }
        let key = try SigningKey(seed: seed)
        guard key.publicKey == pub else { throw CLIError("\(path) is damaged: its key does not match its public key") }
        return key
    }

    private static func read(_ state: ClientState) throws -> JSONValue {
        let path = state.path(ClientState.signKeyFile)
        guard exists(state) else {
            throw CLIError(
                "profile \(Printable.quote(state.name)) holds no signing key for this device-custody user: `chipsite client key take` fetches the site's copy, or copy sign.key from the device that has it"
            )
        }
        let o = try JSONValue(parsing: try ClientState.readText(path), limits: JSONLimits(maxDepth: 4, maxBytes: ClientState.maxFileBytes))
        guard o["format"]?.stringValue == format else { throw CLIError("\(path) is not a client signing key") }
        return o
    }
}
