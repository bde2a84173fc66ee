import ChipModel
import ChipProtocol
import Foundation
import GRDB

extension SiteStore {
    // MARK: Config

    /// The stored value of `key` (nil when unset). A value that fails the
    /// key's validator (written around chipsite, or restored from an old
    /// file) is an error here, so no consumer ever acts on it.
    public func configValue(_ key: ConfigKey) throws -> String? {
        guard let value = try guardedRead({ db in try Self.config(db, key) }) else { return nil }
        do { try key.validate(value) } catch { throw StoreError.badSetting(key: key.name, reason: error.description) }
        return value
    }

    /// Validates and stores `value` for `key`.
    public func setConfigValue(_ key: ConfigKey, _ value: String) throws {
        try guardedWrite { db in try Self.setConfig(db, key, value) }
    }
}
