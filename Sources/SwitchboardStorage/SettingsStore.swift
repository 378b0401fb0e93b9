import Crypto
import Foundation
import SQLKit
import SwitchboardCore

/// Encrypts secrets at rest (API keys, OAuth keys, webhook secrets) with AES-GCM under a 256-bit key that
/// lives outside the database: in the environment or in a key file.
public struct SecretBox: Sendable {
    private let key: SymmetricKey

    public init(key: SymmetricKey) {
        self.key = key
    }

    /// Reads a key written as 64 hexadecimal characters or 44 base64 characters (32 bytes).
    public init(encodedKey text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.count == 64, let bytes = SecretBox.hexBytes(trimmed) {
            key = SymmetricKey(data: bytes)
        } else if let data = Data(base64Encoded: trimmed), data.count == 32 {
            key = SymmetricKey(data: data)
        } else {
            throw DatabaseError("the secret key must be 32 bytes, written as 64 hex characters or base64; generate one with `openssl rand -hex 32`")
        }
    }

    /// A new random key, hex-encoded, for `switchboard` to suggest on first start.
    public static func generateEncodedKey() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.hexString
    }

    public func seal(_ plaintext: String) throws -> String {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: key)
        guard let combined = box.combined else { throw DatabaseError("encrypting a secret failed") }
        return "v1:" + combined.base64EncodedString()
    }

    public func open(_ sealed: String) throws -> String {
        guard sealed.hasPrefix("v1:"), let data = Data(base64Encoded: String(sealed.dropFirst(3))) else {
            throw DatabaseError("a stored secret is not in the expected format")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: data)
            return String(decoding: try AES.GCM.open(box, using: key), as: UTF8.self)
        } catch {
            throw DatabaseError("a stored secret cannot be decrypted: the secret key differs from the one it was saved with")
        }
    }

    private static func hexBytes(_ s: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        var chars = s.makeIterator()
        while let a = chars.next(), let b = chars.next() {
            guard let byte = UInt8(String([a, b]), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

/// Key-value settings; secret ones are stored encrypted and never returned in listings.
public enum SettingsStore {
    public static func set(_ key: String, value: String, now: Int64, on db: any SQLDatabase) async throws {
        try await upsert(key, value: value, secret: false, now: now, on: db)
    }

    public static func setSecret(_ key: String, value: String, box: SecretBox, now: Int64, on db: any SQLDatabase) async throws {
        try await upsert(key, value: try box.seal(value), secret: true, now: now, on: db)
    }

    public static func get(_ key: String, on db: any SQLDatabase) async throws -> String? {
        guard let row = try await db.raw("SELECT value, is_secret FROM settings WHERE key = \(bind: key)").first() else { return nil }
        guard try row.decode(column: "is_secret", as: Int.self) == 0 else {
            throw DatabaseError("setting \(key) is a secret; read it with getSecret")
        }
        return try row.decode(column: "value", as: String.self)
    }

    public static func getSecret(_ key: String, box: SecretBox, on db: any SQLDatabase) async throws -> String? {
        guard let row = try await db.raw("SELECT value FROM settings WHERE key = \(bind: key) AND is_secret = 1").first() else { return nil }
        return try box.open(try row.decode(column: "value", as: String.self))
    }

    /// Every setting, with secrets shown as `(secret)`.
    public static func all(on db: any SQLDatabase) async throws -> [(key: String, value: String)] {
        try await db.raw("SELECT key, value, is_secret FROM settings ORDER BY key").all().map { row in
            let secret = try row.decode(column: "is_secret", as: Int.self) != 0
            return (try row.decode(column: "key", as: String.self), secret ? "(secret)" : try row.decode(column: "value", as: String.self))
        }
    }

    public static func remove(_ key: String, on db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM settings WHERE key = \(bind: key)").run()
    }

    private static func upsert(_ key: String, value: String, secret: Bool, now: Int64, on db: any SQLDatabase) async throws {
        try await db.raw(
            """
            INSERT INTO settings (key, value, is_secret, updated_at) VALUES (\(bind: key), \(bind: value), \(bind: secret ? 1 : 0), \(bind: now))
            ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, is_secret = EXCLUDED.is_secret, updated_at = EXCLUDED.updated_at
            """
        ).run()
    }
}
