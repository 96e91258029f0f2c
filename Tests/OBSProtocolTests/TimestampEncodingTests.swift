import OBSProtocol
import Testing

@Suite("Timestamp formats and parsing")
struct TimestampTests {
    /// Instants checked against Python's `calendar.timegm`, with their weekday.
    static let known: [(seconds: Int64, iso: String, rfc: String)] = [
        (0, "1970-01-01T00:00:00.000Z", "Thu, 01 Jan 1970 00:00:00 GMT"),
        (-1, "1969-12-31T23:59:59.000Z", "Wed, 31 Dec 1969 23:59:59 GMT"),
        (1_795_256_464, "2026-11-21T10:21:04.000Z", "Sat, 21 Nov 2026 10:21:04 GMT"),
        (951_825_600, "2000-02-29T12:00:00.000Z", "Tue, 29 Feb 2000 12:00:00 GMT"),
        (1_709_251_199, "2024-02-29T23:59:59.000Z", "Thu, 29 Feb 2024 23:59:59 GMT"),
        (4_102_444_800, "2100-01-01T00:00:00.000Z", "Fri, 01 Jan 2100 00:00:00 GMT"),
        (4_107_542_400, "2100-03-01T00:00:00.000Z", "Mon, 01 Mar 2100 00:00:00 GMT"),
        (-2_203_891_200, "1900-03-01T00:00:00.000Z", "Thu, 01 Mar 1900 00:00:00 GMT"),
    ]

    @Test("known instants format and parse in all three forms")
    func knownInstants() {
        for (seconds, iso, rfc) in Self.known {
            let time = Timestamp(secondsSinceEpoch: seconds)
            #expect(time.iso8601 == iso)
            #expect(time.rfc1123 == rfc)
            let basic = iso.filter { $0 != "-" && $0 != ":" }.replacingOccurrences(".000Z", "Z")
            #expect(time.iso8601Basic == basic)
            #expect(time.yyyymmdd == String(basic.prefix(8)))
            #expect(Timestamp(iso8601: iso) == time)
            #expect(Timestamp(iso8601: iso.replacingOccurrences(".000Z", "Z")) == time)
            #expect(Timestamp(rfc1123: rfc) == time)
            #expect(Timestamp(iso8601Basic: basic) == time)
        }
    }

    @Test("RFC 1123 dates with other spacing or widths than servers write parse the same")
    func rfc1123Variants() {
        let expected = Timestamp(iso8601: "2026-11-01T10:21:04Z")
        #expect(Timestamp(rfc1123: "Sun, 01 Nov 2026 10:21:04 GMT") == expected)
        #expect(Timestamp(rfc1123: "Sun, 1 Nov 2026 10:21:04 GMT") == expected)
        #expect(Timestamp(rfc1123: "Sun,  01 Nov 2026  10:21:04 UTC") == expected)
        #expect(Timestamp(rfc1123: "Sun, 01 Nov 2026 10:21:4 GMT") == expected)
        #expect(Timestamp(rfc1123: "Sun, 31 Nov 2026 10:21:04 GMT") == nil)
    }

    @Test("2100 is not a leap year; 2000 and 2024 are; 1 Mar 2100 follows 28 Feb")
    func leapYears() {
        #expect(Timestamp(iso8601: "2100-02-29T00:00:00Z") == nil)
        #expect(Timestamp(rfc1123: "Mon, 29 Feb 2100 00:00:00 GMT") == nil)
        #expect(Timestamp(rfc1123: "Tue, 29 Feb 2000 00:00:00 UTC") == Timestamp(iso8601: "2000-02-29T00:00:00Z"))
        #expect(Timestamp(iso8601Basic: "21000229T000000Z") == nil)
        #expect(Timestamp(iso8601: "2000-02-29T00:00:00Z") != nil)
        #expect(Timestamp(iso8601: "2024-02-29T00:00:00Z") != nil)
        #expect(Timestamp(iso8601: "2026-02-29T00:00:00Z") == nil)
        #expect(Timestamp(iso8601: "2026-04-31T00:00:00Z") == nil)
        #expect(Timestamp(iso8601: "2100-02-28T00:00:00Z")!.adding(seconds: 86_400).iso8601 == "2100-03-01T00:00:00.000Z")
    }

    @Test("milliseconds survive ISO 8601; whole seconds survive every format, across 1900-2200")
    func roundTrips() {
        var generator = SplitMix64(seed: 42)
        let range = Timestamp(iso8601: "1900-01-01T00:00:00Z")!.millisecondsSinceEpoch..<Timestamp(iso8601: "2200-01-01T00:00:00Z")!.millisecondsSinceEpoch
        for _ in 0..<5000 {
            let millis = range.lowerBound + Int64(generator.next() % UInt64(range.count))
            let time = Timestamp(millisecondsSinceEpoch: millis)
            #expect(Timestamp(iso8601: time.iso8601) == time)
            let whole = Timestamp(secondsSinceEpoch: time.secondsSinceEpoch)
            #expect(Timestamp(rfc1123: time.rfc1123) == whole)
            #expect(Timestamp(iso8601Basic: time.iso8601Basic) == whole)
        }
        #expect(Timestamp(millisecondsSinceEpoch: -1).iso8601 == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp(millisecondsSinceEpoch: -1).secondsSinceEpoch == -1)
    }

    @Test("malformed times do not parse", arguments: [
        "", "2026-11-21", "2026-11-21T10:21:04", "2026-11-21T10:21:04.Z", "2026-11-21T10:21:04.1234567890Z", "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z", "2026-11-00T00:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21T10:60:00Z", "2026-11-21T10:21:61Z",
        "2026-11-21 10:21:04Z", "2026/11/21T10:21:04Z", "2026-11-21T10:21:04+01:00", "20261121T102104", "2026112T102104Z",
        "Sat, 21 Nov 2026 10:21:04", "Sat, 21 Foo 2026 10:21:04 GMT", "Sat, 21 Nov 2026 10:21 GMT", "Sat, 32 Nov 2026 10:21:04 GMT",
        "Sat, 21 Nov 2026 10:2x:04 GMT", "Sat, 21 nov 2026 10:21:04 GMT", "Sat, 99999999999999999999 Nov 2026 10:21:04 GMT",
        "Sat, 21 Nov 2026 10:21:04 CET",
    ])
    func malformed(_ text: String) {
        #expect(Timestamp(iso8601: text) == nil)
        #expect(Timestamp(iso8601Basic: text) == nil)
        #expect(Timestamp(rfc1123: text) == nil)
    }
}

@Suite("Percent-encoding")
struct PercentEncodingTests {
    @Test("the protocol doc's example, and / kept only in paths")
    func protocolExample() {
        #expect(PercentEncoding.encodePath("dir/a b+~é.txt") == "dir/a%20b%2B~%C3%A9.txt")
        #expect(PercentEncoding.encode("dir/a b+~é.txt", keepSlash: false) == "dir%2Fa%20b%2B~%C3%A9.txt")
        #expect(PercentEncoding.encode("AZaz09-_.~", keepSlash: false) == "AZaz09-_.~")
        #expect(PercentEncoding.encode("🎉\u{1}%", keepSlash: false) == "%F0%9F%8E%89%01%25")
    }

    @Test("decode inverts encode for every byte value and for unicode")
    func roundTrip() {
        var every = ""
        for value in 0..<0x80 { every.unicodeScalars.append(Unicode.Scalar(UInt8(value))) }
        for text in [every, "é🎉ü/ +%", "", "plain"] {
            #expect(PercentEncoding.decode(PercentEncoding.encode(text, keepSlash: false)) == text)
            #expect(PercentEncoding.decode(PercentEncoding.encodePath(text)) == text)
        }
        #expect(PercentEncoding.decode("%c3%a9%C3%A9+") == "éé+")
    }

    @Test("malformed escapes and invalid UTF-8 decode to nil", arguments: ["%", "%2", "a%", "%zz", "%G1", "%1G", "x%2", "%C3", "%C3%28", "%FF", "%ED%A0%80"])
    func malformed(_ text: String) {
        #expect(PercentEncoding.decode(text) == nil)
    }
}
