import Foundation

/// A point in time, to the millisecond, independent of any time zone.
public struct Instant: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var millisecondsSince1970: Int64

    public init(millisecondsSince1970: Int64) {
        self.millisecondsSince1970 = millisecondsSince1970
    }

    public init(_ date: Date) {
        self.millisecondsSince1970 = Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    public var date: Date { Date(timeIntervalSince1970: Double(millisecondsSince1970) / 1000) }

    public static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.millisecondsSince1970 < rhs.millisecondsSince1970
    }

    /// The UTC calendar date of this instant.
    public var utcDate: LocalDate {
        LocalDate(daysSince1970: Int(floorDiv(millisecondsSince1970, 86_400_000)))
    }

    /// `2026-11-24T11:33:06.123Z` (milliseconds only when not zero).
    public var iso8601: String {
        let day = floorDiv(millisecondsSince1970, 86_400_000)
        let msOfDay = millisecondsSince1970 - day * 86_400_000
        let date = LocalDate(daysSince1970: Int(day))
        let h = msOfDay / 3_600_000, m = (msOfDay / 60_000) % 60, s = (msOfDay / 1000) % 60, ms = msOfDay % 1000
        var out = "\(date)T\(pad(Int(h), 2)):\(pad(Int(m), 2)):\(pad(Int(s), 2))"
        if ms != 0 { out += ".\(pad(Int(ms), 3))" }
        return out + "Z"
    }

    public var description: String { iso8601 }

    /// Parses ISO 8601 date-times as Salesforce and PagerDuty write them:
    /// `2026-11-21T03:12:00.000+0000`, `2020-10-02T18:45:22.169Z`, `2026-11-21T03:12:00+01:00`.
    /// A date-time without an offset is rejected: it would be ambiguous.
    public init?(iso8601 text: String) {
        let b = Array(text.utf8)
        guard b.count >= 20, let date = LocalDate(bytes: b[0..<10]), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: " "),
            let h = digits(b, 11, 2), b[13] == UInt8(ascii: ":"), let mi = digits(b, 14, 2), b[16] == UInt8(ascii: ":"),
            let s = digits(b, 17, 2), h < 24, mi < 60, s < 61
        else { return nil }
        var i = 19
        var millis = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 100
            let start = i
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                millis += Int(b[i] - 48) * scale
                scale /= 10
                i += 1
            }
            if i == start { return nil }
        }
        guard i < b.count else { return nil }
        var offsetMinutes = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = digits(b, i, 2) else { return nil }
            i += 2
            if i < b.count, b[i] == UInt8(ascii: ":") { i += 1 }
            guard let om = digits(b, i, 2), oh < 24, om < 60 else { return nil }
            i += 2
            offsetMinutes = sign * (oh * 60 + om)
        default:
            return nil
        }
        guard i == b.count else { return nil }
        let seconds = Int64(date.daysSince1970) * 86_400 + Int64(h * 3600 + mi * 60 + min(s, 59)) - Int64(offsetMinutes * 60)
        self.millisecondsSince1970 = seconds * 1000 + Int64(millis)
    }
}

/// A calendar date without a time or time zone (a Salesforce `date` field, a holiday).
public struct LocalDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int

    public init?(year: Int, month: Int, day: Int) {
        guard (1...12).contains(month), day >= 1, day <= LocalDate.daysIn(month: month, year: year) else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    /// Parses `YYYY-MM-DD`.
    public init?(_ text: String) {
        let b = Array(text.utf8)
        guard b.count == 10, let d = LocalDate(bytes: b[0..<10]) else { return nil }
        self = d
    }

    init?(bytes b: ArraySlice<UInt8>) {
        let s = b.startIndex
        guard b.count >= 10, b[s + 4] == UInt8(ascii: "-"), b[s + 7] == UInt8(ascii: "-"),
            let y = digits(Array(b), 0, 4), let m = digits(Array(b), 5, 2), let d = digits(Array(b), 8, 2),
            let date = LocalDate(year: y, month: m, day: d)
        else { return nil }
        self = date
    }

    /// Days since 1970-01-01 (civil-from-days, proleptic Gregorian).
    public init(daysSince1970 z0: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        self.year = yoe + era * 400 + (m <= 2 ? 1 : 0)
        self.month = m
        self.day = d
    }

    public var daysSince1970: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// 1 = Monday … 7 = Sunday.
    public var isoWeekday: Int {
        let d = daysSince1970
        // 1970-01-01 was a Thursday (4).
        return ((d % 7) + 7 + 3) % 7 + 1
    }

    public func adding(days: Int) -> LocalDate { LocalDate(daysSince1970: daysSince1970 + days) }

    public static func < (lhs: LocalDate, rhs: LocalDate) -> Bool {
        (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day)
    }

    public var description: String { "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))" }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

func pad(_ n: Int, _ width: Int) -> String {
    let s = String(n)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

private func digits(_ b: [UInt8], _ start: Int, _ count: Int) -> Int? {
    guard start + count <= b.count else { return nil }
    var n = 0
    for i in start..<(start + count) {
        let c = b[i]
        guard c >= 48, c <= 57 else { return nil }
        n = n * 10 + Int(c - 48)
    }
    return n
}
