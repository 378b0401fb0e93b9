import Crypto
import Foundation
import SwitchboardCore

/// Verifies `X-PagerDuty-Signature`: one or more comma-separated `v1=<hex>` entries, each an HMAC-SHA256 of the raw
/// body under a subscription secret. Any entry matching any secret passes (secrets rotate); the comparison takes
/// the same time whatever the bytes, so an attacker learns nothing from timing.
public enum WebhookSignature {
    public enum Verdict: Sendable, Hashable {
        case valid
        /// No header, or no `v1=` entry in it: answer 400 so PagerDuty does not redeliver.
        case missing
        /// Entries present, none matches: answer 403.
        case mismatch
    }

    public static func verify(body: [UInt8], header: String?, secrets: [String]) -> Verdict {
        guard let header else { return .missing }
        let entries = header.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("v1=") }
        guard !entries.isEmpty else { return .missing }
        let given = entries.compactMap { hexBytes(String($0.dropFirst(3))) }
        var matched = false
        for secret in secrets {
            let mac = Array(HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8))))
            for candidate in given where constantTimeEqual(candidate, mac) { matched = true }
        }
        return matched ? .valid : .mismatch
    }

    /// The header PagerDuty would send for a body and secret (simulators and tests sign with it).
    public static func sign(body: [UInt8], secret: String) -> String {
        "v1=" + HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(secret.utf8))).hexString
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    static func hexBytes(_ s: String) -> [UInt8]? {
        guard s.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(s.count / 2)
        var it = s.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let byte = UInt8(String([a, b]), radix: 16) else { return nil }
            out.append(byte)
        }
        return out
    }
}
