import Foundation

/// Business hours: weekly open hours in an IANA time zone, minus holidays.
public struct BusinessCalendar: Sendable, Hashable {
    public enum Weekday: String, Sendable, Hashable, CaseIterable {
        case monday, tuesday, wednesday, thursday, friday, saturday, sunday

        /// 1 = Monday … 7 = Sunday.
        public var isoNumber: Int { Weekday.allCases.firstIndex(of: self).map { $0 + 1 } ?? 1 }
    }

    /// Open hours within one day, in minutes since local midnight. `end` may be 1440 ("24:00"); an `end`
    /// before `start` runs past midnight into the next day.
    public struct Hours: Sendable, Hashable, CustomStringConvertible {
        public var start: Int
        public var end: Int

        public init(start: Int, end: Int) {
            self.start = start
            self.end = end
        }

        public var overnight: Bool { end <= start }

        /// Parses `09:00-17:00`.
        public init?(_ text: String) {
            let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let s = Hours.minutes(parts[0]), let e = Hours.minutes(parts[1]), s < 1440, s != e else { return nil }
            self.init(start: s, end: e)
        }

        static func minutes(_ s: String) -> Int? {
            let p = s.split(separator: ":", omittingEmptySubsequences: false)
            guard p.count == 2, p[0].count == 2, p[1].count == 2, let h = Int(p[0]), let m = Int(p[1]), h >= 0, m >= 0, m < 60 else { return nil }
            guard h < 24 || (h == 24 && m == 0) else { return nil }
            return h * 60 + m
        }

        public var description: String {
            "\(pad(start / 60, 2)):\(pad(start % 60, 2))-\(pad(end / 60, 2)):\(pad(end % 60, 2))"
        }
    }

    public var name: String
    public var timeZone: TimeZone
    public var weekly: [Weekday: [Hours]]
    public var holidays: Set<LocalDate>

    public init(name: String, timeZone: TimeZone, weekly: [Weekday: [Hours]], holidays: Set<LocalDate> = []) {
        self.name = name
        self.timeZone = timeZone
        self.weekly = weekly
        self.holidays = holidays
    }

    /// The local date and minute of the day of an instant in this calendar's time zone.
    public func localTime(of instant: Instant) -> (date: LocalDate, minute: Int) {
        let offset = Int64(timeZone.secondsFromGMT(for: instant.date)) * 1000
        let local = instant.millisecondsSince1970 + offset
        let day = floorDiv(local, 86_400_000)
        let minute = Int((local - day * 86_400_000) / 60_000)
        return (LocalDate(daysSince1970: Int(day)), minute)
    }

    /// True when the instant falls in open hours on a day that is not a holiday.
    public func isOpen(at instant: Instant) -> Bool {
        let (date, minute) = localTime(of: instant)
        if !holidays.contains(date), let today = weekly[weekday(of: date)] {
            for h in today {
                if h.overnight ? minute >= h.start : (minute >= h.start && minute < h.end) { return true }
            }
        }
        // Hours that started yesterday and run past midnight.
        let yesterday = date.adding(days: -1)
        if !holidays.contains(yesterday), let previous = weekly[weekday(of: yesterday)] {
            for h in previous where h.overnight && minute < h.end { return true }
        }
        return false
    }

    private func weekday(of date: LocalDate) -> Weekday {
        Weekday.allCases[date.isoWeekday - 1]
    }

    /// A 24/7 calendar, for tests and defaults.
    public static func alwaysOpen(name: String, timeZone: TimeZone) -> BusinessCalendar {
        var weekly: [Weekday: [Hours]] = [:]
        for d in Weekday.allCases { weekly[d] = [Hours(start: 0, end: 1440)] }
        return BusinessCalendar(name: name, timeZone: timeZone, weekly: weekly)
    }
}
