// Wall-clock instants and the three date formats of the protocol, without Foundation:
// RFC 1123 (`Date:` header), ISO 8601 basic (`x-amz-date`, V4 scope) and ISO 8601 with
// milliseconds (XML `LastModified`, object-lock dates).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A UTC instant with millisecond precision.
public struct Timestamp: Hashable, Sendable, Comparable {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var millisecondsSinceEpoch: Int64

    public init(millisecondsSinceEpoch: Int64) { self.millisecondsSinceEpoch = millisecondsSinceEpoch }
    public init(secondsSinceEpoch: Int64) { millisecondsSinceEpoch = secondsSinceEpoch * 1000 }

    public var secondsSinceEpoch: Int64 { millisecondsSinceEpoch.floorDiv(1000) }

    /// The current wall-clock time.
    public static func now() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(millisecondsSinceEpoch: Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.millisecondsSinceEpoch < rhs.millisecondsSinceEpoch }

    public func adding(seconds: Int64) -> Timestamp { Timestamp(millisecondsSinceEpoch: millisecondsSinceEpoch + seconds * 1000) }

    // MARK: Civil calendar (Howard Hinnant's days-from-civil algorithms)

    struct Civil: Equatable {
        var year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64, millisecond: Int64
    }

    var civil: Civil {
        let seconds = secondsSinceEpoch
        let millisecond = millisecondsSinceEpoch - seconds * 1000
        let days = seconds.floorDiv(86_400)
        let secondOfDay = seconds - days * 86_400
        let z = days + 719_468
        let era = z.floorDiv(146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return Civil(year: year, month: month, day: day, hour: secondOfDay / 3600,
                     minute: secondOfDay % 3600 / 60, second: secondOfDay % 60, millisecond: millisecond)
    }

    init?(_ c: Civil) {
        guard (0...9999).contains(c.year), (1...12).contains(c.month), (1...Timestamp.daysIn(month: c.month, year: c.year)).contains(c.day), (0...23).contains(c.hour),
              (0...59).contains(c.minute), (0...60).contains(c.second), (0...999).contains(c.millisecond)
        else { return nil }
        let y = c.month <= 2 ? c.year - 1 : c.year
        let era = y.floorDiv(400)
        let yoe = y - era * 400
        let mp = c.month > 2 ? c.month - 3 : c.month + 9
        let doy = (153 * mp + 2) / 5 + c.day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        self.init(millisecondsSinceEpoch: ((days * 86_400) + c.hour * 3600 + c.minute * 60 + c.second) * 1000 + c.millisecond)
    }

    /// Days in `month` of `year` (Gregorian: leap years are divisible by 4, except centuries
    /// not divisible by 400).
    static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    private static let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    // MARK: Formats

    /// `Sat, 21 Nov 2026 10:21:04 GMT`
    public var rfc1123: String {
        let c = civil
        let weekday = Timestamp.weekdays[Int(secondsSinceEpoch.floorDiv(86_400).floorMod(7))]
        return "\(weekday), \(pad(c.day, 2)) \(Timestamp.months[Int(c.month - 1)]) \(pad(c.year, 4)) \(pad(c.hour, 2)):\(pad(c.minute, 2)):\(pad(c.second, 2)) GMT"
    }

    /// `20261121T102104Z`
    public var iso8601Basic: String {
        let c = civil
        return "\(pad(c.year, 4))\(pad(c.month, 2))\(pad(c.day, 2))T\(pad(c.hour, 2))\(pad(c.minute, 2))\(pad(c.second, 2))Z"
    }

    /// `20261121`, the V4 credential scope date.
    public var yyyymmdd: String { String(iso8601Basic.prefix(8)) }

    /// `2026-11-21T10:21:04.000Z`
    public var iso8601: String {
        let c = civil
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.hour, 2)):\(pad(c.minute, 2)):\(pad(c.second, 2)).\(pad(c.millisecond, 3))Z"
    }

    /// Parses RFC 1123 (`Sat, 21 Nov 2026 10:21:04 GMT`).
    public init?(rfc1123 text: String) {
        // On UTF-8 bytes: every HEAD reply carries one (Last-Modified). The fixed-width form
        // servers send is read by position; any other spacing word by word.
        let u = Array(text.utf8)
        if u.count == 29, u[3] == UInt8(ascii: ","), u[4] == UInt8(ascii: " "), u[7] == UInt8(ascii: " "), u[11] == UInt8(ascii: " "),
           u[16] == UInt8(ascii: " "), u[19] == UInt8(ascii: ":"), u[22] == UInt8(ascii: ":"), u[25] == UInt8(ascii: " "),
           u[26...].elementsEqual("GMT".utf8) || u[26...].elementsEqual("UTC".utf8),
           let monthIndex = Timestamp.months.firstIndex(where: { $0.utf8.elementsEqual(u[8..<11]) }),
           let day = digits(u, 5, 2), let year = digits(u, 12, 4), let h = digits(u, 17, 2), let m = digits(u, 20, 2), let s = digits(u, 23, 2) {
            self.init(Civil(year: year, month: Int64(monthIndex + 1), day: day, hour: h, minute: m, second: s, millisecond: 0))
            return
        }
        let parts = text.utf8.split(separator: UInt8(ascii: " "))
        guard parts.count == 6, parts[5].elementsEqual("GMT".utf8) || parts[5].elementsEqual("UTC".utf8),
              let day = signedDecimal(parts[1]), let monthIndex = Timestamp.months.firstIndex(where: { $0.utf8.elementsEqual(parts[2]) }),
              let year = signedDecimal(parts[3]) else { return nil }
        let clock = parts[4].split(separator: UInt8(ascii: ":"))
        guard clock.count == 3, let h = signedDecimal(clock[0]), let m = signedDecimal(clock[1]), let s = signedDecimal(clock[2]) else { return nil }
        self.init(Civil(year: year, month: Int64(monthIndex + 1), day: day, hour: h, minute: m, second: s, millisecond: 0))
    }

    /// Parses ISO 8601 basic (`20261121T102104Z`).
    public init?(iso8601Basic text: String) {
        let u = Array(text.utf8)
        guard u.count == 16, u[8] == UInt8(ascii: "T"), u[15] == UInt8(ascii: "Z"),
              let y = digits(u, 0, 4), let mo = digits(u, 4, 2), let d = digits(u, 6, 2),
              let h = digits(u, 9, 2), let mi = digits(u, 11, 2), let s = digits(u, 13, 2) else { return nil }
        self.init(Civil(year: y, month: mo, day: d, hour: h, minute: mi, second: s, millisecond: 0))
    }

    /// Parses ISO 8601 extended UTC, with or without a fraction of 1 to 9 digits, kept to the
    /// millisecond (`2015-07-01T04:11:15.297Z`; SeaweedFS writes `…:20.71Z`).
    public init?(iso8601 text: String) {
        let u = Array(text.utf8)
        guard u.count == 20 || (22...30).contains(u.count), u.last == UInt8(ascii: "Z"), u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-"),
              u[10] == UInt8(ascii: "T"), u[13] == UInt8(ascii: ":"), u[16] == UInt8(ascii: ":"),
              let y = digits(u, 0, 4), let mo = digits(u, 5, 2), let d = digits(u, 8, 2),
              let h = digits(u, 11, 2), let mi = digits(u, 14, 2), let s = digits(u, 17, 2) else { return nil }
        var ms: Int64 = 0
        if u.count > 20 {
            let fractionDigits = u.count - 21
            guard u[19] == UInt8(ascii: "."), let millisecondDigits = digits(u, 20, min(3, fractionDigits)),
                  digits(u, 20, fractionDigits) != nil else { return nil }
            ms = fractionDigits >= 3 ? millisecondDigits : millisecondDigits * (fractionDigits == 1 ? 100 : 10)
        }
        self.init(Civil(year: y, month: mo, day: d, hour: h, minute: mi, second: s, millisecond: ms))
    }
}

/// A source of the current time; tests inject a fixed one.
public typealias Clock = @Sendable () -> Timestamp

private func pad(_ value: Int64, _ width: Int) -> String {
    let text = String(value)
    return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
}

/// A decimal number as `Int64(_:)` reads it (an optional sign, then digits), from UTF-8 bytes.
private func signedDecimal<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Int64? {
    var rest = bytes[...]
    let negative = rest.first == UInt8(ascii: "-")
    if negative || rest.first == UInt8(ascii: "+") { rest = rest.dropFirst() }
    guard !rest.isEmpty else { return nil }
    var value: Int64 = 0
    for byte in rest {
        guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
        let (shifted, overflowed) = value.multipliedReportingOverflow(by: 10)
        let (sum, overflowedAgain) = shifted.addingReportingOverflow((negative ? -1 : 1) * Int64(byte - UInt8(ascii: "0")))
        guard !overflowed, !overflowedAgain else { return nil }
        value = sum
    }
    return value
}

private func digits(_ u: [UInt8], _ start: Int, _ count: Int) -> Int64? {
    var value: Int64 = 0
    for c in u[start..<start + count] {
        guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
        value = value * 10 + Int64(c - UInt8(ascii: "0"))
    }
    return value
}

extension Int64 {
    func floorDiv(_ d: Int64) -> Int64 { let q = self / d; return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q }
    func floorMod(_ d: Int64) -> Int64 { self - floorDiv(d) * d }
}
