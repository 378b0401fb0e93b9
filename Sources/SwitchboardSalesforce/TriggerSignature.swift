import Crypto
import Foundation
import SwitchboardCore

/// The signature the Salesforce package puts on every post (`docs/salesforce-package.md`, "Wire contract"):
/// `X-Switchboard-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>`, with the Unix-seconds
/// timestamp in `X-Switchboard-Timestamp` and the org in `X-Switchboard-Org`. The timestamp is inside the MAC, so a
/// captured post cannot be replayed outside the window with a fresh time.
public enum TriggerSignature {
    public static let orgHeader = "X-Switchboard-Org"
    public static let timestampHeader = "X-Switchboard-Timestamp"
    public static let signatureHeader = "X-Switchboard-Signature"
    /// How far a timestamp may be from our clock, either way (the package signs when its Queueable runs).
    public static let window: Int64 = 300

    /// Why a post was refused; `status` is the HTTP answer (4xx: the package does not retry them).
    public enum Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        case missing(header: String)
        case malformedTimestamp(String)
        case stale(ageSeconds: Int64)
        case mismatch
        case unknownOrg(String)

        public var status: Int {
            switch self {
            case .missing, .malformedTimestamp: 400
            case .unknownOrg: 401
            case .stale, .mismatch: 403
            }
        }

        public var description: String {
            switch self {
            case .missing(let header): "the \(header) header is missing; posts must come from the Switchboard Salesforce package"
            case .malformedTimestamp(let value): "\(timestampHeader) \"\(value)\" is not Unix seconds"
            case .stale(let age):
                "the post is \(abs(age)) s \(age >= 0 ? "old" : "in the future"); posts are accepted for \(window) s (check the org's and this server's clocks)"
            case .mismatch: "the signature does not match the org's trigger secret; set the same secret in Switchboard Settings and `switchboard salesforce connect --trigger-secret`"
            case .unknownOrg(let org): "org \(org) is not connected; run `switchboard salesforce connect` for it"
            }
        }
    }

    /// `v1=<hex>` for a body signed at `timestamp` (the package's `SwitchboardSignature.sign`).
    public static func sign(secret: String, timestamp: Int64, body: [UInt8]) -> String {
        "v1=" + mac(secret: secret, timestamp: String(timestamp), body: body).hexString
    }

    /// Checks a post's headers against the org's secrets (several while one rotates) at `now` (Unix seconds).
    public static func verify(
        body: [UInt8], timestamp: String?, signature: String?, secrets: [String], now: Int64
    ) throws(Refusal) {
        guard let timestamp, !timestamp.isEmpty else { throw .missing(header: timestampHeader) }
        guard let signature, !signature.isEmpty else { throw .missing(header: signatureHeader) }
        guard let seconds = Int64(timestamp) else { throw .malformedTimestamp(timestamp) }
        let age = now - seconds
        guard abs(age) <= window else { throw .stale(ageSeconds: age) }
        let given = signature.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix("v1=") }.compactMap { hexBytes(String($0.dropFirst(3))) }
        var matched = false
        for secret in secrets {
            let expected = mac(secret: secret, timestamp: timestamp, body: body)
            for candidate in given where constantTimeEqual(candidate, expected) { matched = true }
        }
        guard matched else { throw .mismatch }
    }

    static func mac(secret: String, timestamp: String, body: [UInt8]) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: Array(secret.utf8)))
        hmac.update(data: Array((timestamp + ".").utf8))
        hmac.update(data: body)
        return Array(hmac.finalize())
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    static func hexBytes(_ s: String) -> [UInt8]? {
        let chars = Array(s.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// The signed context the package's console component puts in `?context=`:
/// `base64url(payload) + "." + hex(HMAC-SHA256(secret, base64url(payload)))`, payload
/// `{"recordId","object","userEmail","orgId","exp"}` living 5 minutes.
public struct ConsoleContext: Sendable, Hashable {
    public var recordId: String
    public var object: String
    public var userEmail: String
    public var orgId: String
    public var expires: Int64

    public init(recordId: String, object: String, userEmail: String, orgId: String, expires: Int64) {
        (self.recordId, self.object, self.userEmail, self.orgId, self.expires) = (recordId, object, userEmail, orgId, expires)
    }
}
