/// Salesforce record Ids: 15 characters, case-sensitive, or 18 with a case-insensitive checksum suffix.
public enum SalesforceId {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345".utf8)

    /// True for a 15- or 18-character alphanumeric string whose checksum (when present) is right.
    public static func isValid(_ id: String) -> Bool {
        let b = Array(id.utf8)
        guard b.count == 15 || b.count == 18, b.allSatisfy(isAlphanumeric) else { return false }
        guard b.count == 18 else { return true }
        return Array(checksum(b[0..<15])) == b[15..<18].map { upper($0) }
    }

    /// The 18-character form of a 15- or 18-character Id; other strings are returned unchanged.
    public static func normalized(_ id: String) -> String {
        let b = Array(id.utf8)
        guard b.allSatisfy(isAlphanumeric) else { return id }
        if b.count == 15 { return id + String(decoding: checksum(b[0..<15]), as: UTF8.self) }
        if b.count == 18 { return restoringCase(b) ?? id }
        return id
    }

    /// The 18-character form is case-insensitive: its suffix says which of the first 15 are capitals.
    private static func restoringCase(_ b: [UInt8]) -> String? {
        var head = Array(b[0..<15])
        for chunk in 0..<3 {
            guard let bits = alphabet.firstIndex(of: upper(b[15 + chunk])) else { return nil }
            for i in 0..<5 {
                let j = chunk * 5 + i
                let c = head[j]
                guard (65...90).contains(c) || (97...122).contains(c) else { continue }
                head[j] = bits & (1 << i) != 0 ? upper(c) : lower(c)
            }
        }
        return String(decoding: head + checksum(head[0..<15]), as: UTF8.self)
    }

    /// The three checksum characters for the first 15 characters of an Id.
    static func checksum(_ head: ArraySlice<UInt8>) -> [UInt8] {
        let chars = Array(head)
        var out: [UInt8] = []
        for chunk in 0..<3 {
            var bits = 0
            for i in 0..<5 where (65...90).contains(chars[chunk * 5 + i]) {
                bits |= 1 << i
            }
            out.append(alphabet[bits])
        }
        return out
    }

    /// Compares two Ids the way Salesforce does: by their 18-character form.
    public static func same(_ a: String, _ b: String) -> Bool {
        if a == b { return true }
        return normalized(a) == normalized(b)
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c)
    }

    private static func upper(_ c: UInt8) -> UInt8 { (97...122).contains(c) ? c - 32 : c }
    private static func lower(_ c: UInt8) -> UInt8 { (65...90).contains(c) ? c + 32 : c }
}
