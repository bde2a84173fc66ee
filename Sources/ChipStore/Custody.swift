import ChipModel
import ChipProtocol
import Foundation
import GRDB

/// Who holds the user's signing key (protocol 10.7): `me.key.take` and
/// `me.signkey`, each one transaction that reads the user, asks
/// ``KeyCustody`` and writes what it decided.
extension SiteStore {
    /// Tag of the stored secret of a user whose seed the site no longer
    /// holds. `users.secret` is NOT NULL with a length of 33 or 73, so the
    /// erased form is this tag and 32 zero bytes: `StoredSecret.open`
    /// refuses it (unknown format), so no key is ever made from it.
    public static let erasedSecretTag: UInt8 = 0x02
    static let erasedSecret: [UInt8] = [erasedSecretTag] + [UInt8](repeating: 0, count: SigningKey.seedLength)

    /// Whether a stored user secret is the erased marker.
    static func isErased(_ stored: [UInt8]) -> Bool { stored.first == erasedSecretTag }

    /// The user as ``KeyCustody`` sees it, with the stored secret.
    static func custodySnapshot(_ db: Database, _ cuid: CUID, device: DeviceID?) throws -> (KeyCustody.Snapshot, secret: [UInt8]) {
        guard
            let row = try Row.fetchOne(cached: db, sql: "SELECT secret, custody, cert FROM users WHERE cuid = ?", arguments: [cuid.value])
        else { throw StoreError.unknownUser(cuid.value) }
        let secret = Array(row["secret"] as Data)
        let custodyText: String = row["custody"]
        guard let custody = UserCustody(rawValue: custodyText) else { throw StoreError.damaged("custody of \(cuid.value)") }
        let cert = try certificate(row, cuid: cuid)
        let fetches =
            try device.map {
                try Int64.fetchAll(
                    cached: db, sql: "SELECT fetched FROM key_fetches WHERE cuid = ? AND device = ? ORDER BY fetched",
                    arguments: [cuid.value, $0.description])
            } ?? []
        // `P.draft` counts as past draft: its core is built and names the user's current key.
        let pastDraft =
            try Bool.fetchOne(
                cached: db, sql: "SELECT 1 FROM tallies WHERE cuid = ? AND state <> ? LIMIT 1", arguments: [cuid.value, TallyState.draft.rawValue])
            ?? false
        let snapshot = KeyCustody.Snapshot(
            custody: custody, siteHoldsKey: !isErased(secret), certKey: cert.publicKey, fetches: fetches,
            tallyPastDraft: pastDraft, agent: try agent(db))
        return (snapshot, secret)
    }

    /// `me.key.take` `fetch` by `device` in the session opened at
    /// `sessionOpened` (ms): the user's seed sealed to the device's X25519
    /// key (``KeyTransfer``), and the fetch recorded, in one transaction.
    /// The sealed form is kept nowhere.
    public func fetchKeyForDevice(cuid: CUID, device: DeviceID, sessionOpened: Int64, now: Int64, sealingKey: SealingKey?) throws
        -> String
    {
        try guardedWrite { db in
            let (snapshot, secret) = try Self.custodySnapshot(db, cuid, device: device)
            if let refusal = KeyCustody.fetch(snapshot) { throw refusal }
            if StoredSecret.isSealed(secret), sealingKey == nil { throw StoreError.passphraseNeeded }
            let key = try Self.signingKey(from: secret, sealingKey: sealingKey, label: Self.userKeyLabel(cuid))
            guard Crypto.constantTimeEqual(key.publicKey, snapshot.certKey) else {
                throw StoreError.damaged("the stored key of \(cuid.value) is not the one in its certificate")
            }
            var seed = key.exportSeed()
            defer { Crypto.wipe(&seed) }
            let sealed = try KeyTransfer.seal(seed: seed, to: device.publicKey)
            try db.execute(
                cached: "INSERT INTO key_fetches (cuid, device, session, fetched) VALUES (?, ?, ?, ?)",
                arguments: [cuid.value, device.description, sessionOpened, now])
            return sealed
        }
    }

    /// `me.key.take` `confirm`: in one transaction the proof is checked
    /// (``KeyCustody/confirm``), the site's copy of the seed erased and
    /// custody set to `device`. A repeat, once custody is `device`, changes
    /// nothing. Returns the custody (always `device`).
    @discardableResult
    public func confirmKeyTake(
        cuid: CUID, device: DeviceID, sessionOpened: Int64, proof: KeyTakeProof, sign: String, now: Int64
    ) throws -> UserCustody {
        try guardedWrite { db in
            let (snapshot, _) = try Self.custodySnapshot(db, cuid, device: device)
            switch KeyCustody.confirm(proof, sign: sign, user: cuid, device: device, sessionOpened: sessionOpened, snapshot: snapshot, now: now) {
            case .failure(let e): throw e
            case .success(.already): return .device
            case .success(.take):
                try Self.erasingFreedBytes(db) {
                    try db.execute(
                        cached: "UPDATE users SET secret = ?, custody = ? WHERE cuid = ? AND custody = ?",
                        arguments: [Data(Self.erasedSecret), UserCustody.device.rawValue, cuid.value, UserCustody.site.rawValue])
                }
                guard db.changesCount == 1 else { throw StoreError.damaged("user \(cuid.value) changed meanwhile") }
                // The fetch records have served: the key is the device's now.
                try db.execute(cached: "DELETE FROM key_fetches WHERE cuid = ?", arguments: [cuid.value])
                return .device
            }
        }
    }

    /// `me.signkey`: a `device` user's first key replaces the site-made
    /// placeholder (``KeyCustody/signKey``); the certificate is re-issued
    /// with the new key (new date, same fields) and the placeholder seed
    /// erased, in one transaction. Returns the new certificate.
    public func setDeviceKey(cuid: CUID, key: SignKeyArgs, sign: String, now: Int64) throws -> Certificate {
        try guardedWrite { db in
            try Self.checkNotLocked(db, cuid)
            let (snapshot, _) = try Self.custodySnapshot(db, cuid, device: nil)
            let publicKey: [UInt8]
            switch KeyCustody.signKey(key, sign: sign, user: cuid, snapshot: snapshot, now: now) {
            case .failure(let e): throw e
            case .success(let k): publicKey = k
            }
            if try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM users WHERE public = ?", arguments: [Data(publicKey)]) != nil {
                throw UserError(.state, "that key is another user's")
            }
            guard let row = try Row.fetchOne(cached: db, sql: "SELECT cert FROM users WHERE cuid = ?", arguments: [cuid.value]) else {
                throw StoreError.unknownUser(cuid.value)
            }
            let old = try Self.certificate(row, cuid: cuid)
            let cert = try Certificate(
                chad: CHAD(cuid: cuid, agent: try Self.agent(db), address: try Self.address(db)), type: old.type, name: old.name,
                email: old.email, publicKey: publicKey, date: Self.now())
            try Self.erasingFreedBytes(db) {
                try db.execute(
                    cached: "UPDATE users SET public = ?, secret = ?, cert = ? WHERE cuid = ?",
                    arguments: [Data(publicKey), Data(Self.erasedSecret), cert.json.canonicalString, cuid.value])
            }
            return cert
        }
    }

    /// Runs `body` with SQLite's `secure_delete` on, so that the cell a
    /// rewritten row leaves behind (the old seed) is zeroed in its page
    /// rather than left as free space. The WAL's older page images go at
    /// the next checkpoint (``checkpointAfterErase()``, and serve's stop).
    static func erasingFreedBytes(_ db: Database, _ body: () throws -> Void) throws {
        try db.execute(cached: "PRAGMA secure_delete = ON")
        defer { try? db.execute(cached: "PRAGMA secure_delete = OFF") }
        try body()
    }

    /// After an erase: moves the WAL into the file and truncates it, so the
    /// page images that held the seed leave the WAL. Best effort: a reader
    /// holding an old snapshot keeps them until the next checkpoint.
    public func checkpointAfterErase() {
        try? database.writeWithoutTransaction { db in try db.execute(cached: "PRAGMA wal_checkpoint(TRUNCATE)") }
    }
}

extension SiteStore {
    /// A tally waits for a `device` user's signature (10.5), in the
    /// transaction of the change: a partner's offer reached the user (tally
    /// `uuid` now in `P.offer`, kind `accept`), or a partner redeemed the
    /// user's invitation (`P.draft`, kind `offer`). The event is
    /// `{"kind","uuid","core","hash"}`.
    static func appendSignEventIfDevice(_ db: Database, tally uuid: String, now: String) throws {
        guard let t = try fetchTally(db, uuid: uuid), let core = t.core else { return }
        let kind: SignKind
        switch t.state {
        case .peerOffer: kind = .accept
        case .peerDraft: kind = .offer
        default: return
        }
        guard try custody(db, t.cuid.value) == .device else { return }
        try appendUserEvent(
            db, cuid: t.cuid.value, topic: .sign, data: UserEvent.signData(kind: kind, uuid: t.uuid, core: core.json, hash: core.hash),
            now: Timestamp.parse(now) ?? 0)
    }

    /// An invoice from the partner reached a `device` user (10.5, kind
    /// `invoice`, scope `pay`), in the transaction that stores it: the
    /// device answers with a chit it signs (`chit.pay`, `ref` naming the
    /// invoice) or `chit.refuse`. `core` is the invoice as it came, `hash`
    /// base64url SHA-256 of its canonical form.
    static func appendInvoiceSignEventIfDevice(_ db: Database, _ invoice: InvoiceObject, now: String) throws {
        guard let cuid = try String.fetchOne(cached: db, sql: "SELECT cuid FROM tallies WHERE uuid = ?", arguments: [invoice.tally]),
            try custody(db, cuid) == .device
        else { return }
        try appendUserEvent(
            db, cuid: cuid, topic: .sign,
            data: UserEvent.signData(kind: .invoice, uuid: invoice.uuid, core: invoice.json, hash: invoice.hash),
            now: Timestamp.parse(now) ?? 0)
    }
}
