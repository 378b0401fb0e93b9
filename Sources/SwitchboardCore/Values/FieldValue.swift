import Foundation

/// A typed value of a Salesforce field or a PagerDuty incident attribute.
///
/// Values arrive as JSON (the Apex trigger's `JSON.serialize` output, PagerDuty webhooks) and are typed
/// either by the object's describe (``ObjectSchema``) or, when no describe is known, by their shape.
public enum FieldValue: Sendable, Hashable {
    case null
    case text(String)
    case number(Double)
    case boolean(Bool)
    case date(LocalDate)
    case dateTime(Instant)
    /// A picklist value; a multi-select picklist holds several (Salesforce joins them with `;`).
    case picklist([String])
    /// An Id: a Salesforce record Id, or a PagerDuty object id with its display name (`summary`).
    case reference(id: String, label: String?)

    /// The value's type, or `nil` for ``null``.
    public var type: FieldType? {
        switch self {
        case .null: nil
        case .text: .text
        case .number: .number
        case .boolean: .boolean
        case .date: .date
        case .dateTime: .dateTime
        case .picklist: .picklist
        case .reference: .reference
        }
    }

    /// True for null, an empty or whitespace-only text and an empty picklist.
    public var isBlank: Bool {
        switch self {
        case .null: true
        case .text(let s): FieldValue.isBlank(s)
        case .picklist(let values): values.allSatisfy(FieldValue.isBlank)
        case .reference(let id, _): id.isEmpty
        default: false
        }
    }

    /// The value as text, the way it reads in a title, a template or a Salesforce field.
    public var text: String {
        switch self {
        case .null: ""
        case .text(let s): s
        case .number(let n): FieldValue.format(number: n)
        case .boolean(let b): b ? "true" : "false"
        case .date(let d): d.description
        case .dateTime(let t): t.iso8601
        case .picklist(let values): values.joined(separator: ";")
        case .reference(let id, let label): label ?? id
        }
    }

    /// The value as a JSON-compatible scalar for machine-readable output.
    public var jsonValue: JSONValue {
        switch self {
        case .null: .null
        case .text(let s): .string(s)
        case .number(let n): .number(n)
        case .boolean(let b): .bool(b)
        case .date, .dateTime, .picklist: .string(text)
        case .reference(let id, _): .string(id)
        }
    }

    /// Empty or only whitespace; decides on the first byte for the common case of text starting with a letter.
    static func isBlank(_ s: String) -> Bool {
        guard let first = s.utf8.first else { return true }
        if first < 0x80 && first != 0x20 && !(0x09...0x0D).contains(first) { return false }
        return s.allSatisfy(\.isWhitespace)
    }

    static func format(number n: Double) -> String {
        if n.rounded() == n, abs(n) < 1e15 { return String(Int64(n)) }
        return String(n)
    }
}

/// The type of a field, as far as conditions are concerned.
public enum FieldType: String, Sendable, Hashable, CaseIterable, Codable {
    case text, number, boolean, date, dateTime = "datetime", picklist, reference

    /// Maps a Salesforce describe `type` onto the rule engine's type.
    public init(salesforceType: String) {
        switch salesforceType.lowercased() {
        case "double", "currency", "percent", "int", "long": self = .number
        case "boolean": self = .boolean
        case "date": self = .date
        case "datetime": self = .dateTime
        case "picklist", "multipicklist", "combobox": self = .picklist
        case "reference", "id": self = .reference
        default: self = .text
        }
    }
}
