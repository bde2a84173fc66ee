import ChipChannel
import ChipModel

/// What the site decides and does for the user port: the only way the edge
/// reaches the site. The edge knows nothing of tickets, devices or commands;
/// it asks here exactly what ``UserChannelMachine`` asks (`.ask`) and passes
/// the answers back to it unchanged.
public protocol UserPortHost: Sendable {
    /// A `register` handshake (10.3): the user the device is now registered
    /// for, or nil for any failure (the site burns the ticket, counts, logs);
    /// nil closes silently and counts as a failed registration for `address`.
    func register(_ registration: UserRegistration, from address: String) async -> CUID?
    /// A `session` handshake (10.4): what this device may do, or nil for an
    /// unknown or revoked key (silent close).
    func session(device: DeviceID, from address: String) async -> UserSessionGrant?
    /// The session is open (its `A` is queued).
    func opened(_ session: UserSession) async
    /// One request, in the order received. The session's frames are read by
    /// one task that waits for this to return, so a long command should run
    /// elsewhere and `send` its reply.
    func received(_ message: UserMessage, on session: UserSession) async
    /// The session is gone (called once for each `opened`).
    func closed(_ session: UserSession) async
}

/// One open session of a device on the user port (10.4): one TCP
/// connection driving a ``UserChannelMachine``. `send` may be called from any
/// task; it encrypts and queues without waiting on the device's socket.
public final class UserSession: Sendable, CustomStringConvertible {
    /// Unique within its listener.
    public let id: UInt64
    /// The remote IP address (for logs and limits).
    public let remoteAddress: String
    /// The device key the handshake proved.
    public let device: DeviceID
    /// What the site granted when the session opened.
    public let grant: UserSessionGrant
    public var user: CUID { grant.user }
    let link: UserLink

    init(id: UInt64, remoteAddress: String, device: DeviceID, grant: UserSessionGrant, link: UserLink) {
        self.id = id
        self.remoteAddress = remoteAddress
        self.device = device
        self.grant = grant
        self.link = link
    }

    /// Encrypts one JSON object (a reply or an event) into a `T` frame and
    /// queues it. Throws `notOpen` once closed, `tooLarge` past one frame; a
    /// device whose queue passes `UserPortLimits.maxQueuedBytes` is closed.
    public func send(_ message: JSONValue) async throws(UserPortError) {
        try await link.send(message)
    }

    /// Whether the session is still open.
    public var isOpen: Bool { get async { await link.isOpen } }

    /// Closes the connection at once; nothing more is sent.
    public func close() { link.close() }

    public var description: String { "user session \(id) (\(user.value), \(remoteAddress))" }
}
