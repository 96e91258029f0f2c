// The request as it goes on the wire: method, percent-encoded path, decoded query items and
// ordered header fields. Signing (client) and signature checking (server) both work on this
// form, so they canonicalise exactly the same bytes.
import OBSHashing

/// Ordered HTTP header fields with case-insensitive lookup. Names are compared in place, ASCII
/// case folded byte by byte: a lookup allocates nothing (a HEAD reply is read with a dozen of
/// them, on every metadata request).
public struct HeaderFields: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Field = (name: String, value: String)
    public private(set) var fields: [Field] = []

    public init() {}
    public init(_ fields: [Field]) { self.fields = fields }
    public init(dictionaryLiteral elements: (String, String)...) { fields = elements.map { (name: $0.0, value: $0.1) } }

    /// The first value of `name`; setting replaces every field of that name (nil removes them).
    public subscript(name: String) -> String? {
        get {
            for field in fields where field.name.equalsIgnoringASCIICase(name) { return field.value }
            return nil
        }
        set {
            if let newValue, let index = fields.firstIndex(where: { $0.name.equalsIgnoringASCIICase(name) }) {
                fields[index].value = newValue
                var next = index + 1
                while next < fields.count {
                    if fields[next].name.equalsIgnoringASCIICase(name) { fields.remove(at: next) } else { next += 1 }
                }
            } else if let newValue {
                fields.append((name: name, value: newValue))
            } else {
                fields.removeAll { $0.name.equalsIgnoringASCIICase(name) }
            }
        }
    }

    /// Appends a field, keeping any earlier one of the same name.
    public mutating func add(name: String, value: String) { fields.append((name: name, value: value)) }

    /// Makes room for `count` fields (a reply's headers are collected one by one).
    public mutating func reserveCapacity(_ count: Int) { fields.reserveCapacity(count) }

    public func values(_ name: String) -> [String] {
        fields.filter { $0.name.equalsIgnoringASCIICase(name) }.map(\.value)
    }

    public func makeIterator() -> IndexingIterator<[Field]> { fields.makeIterator() }
    public var count: Int { fields.count }
}

/// One query parameter, decoded. A value-less key (`?uploads`) has a nil value.
public struct QueryItem: Hashable, Sendable {
    public var name: String
    public var value: String?
    public init(_ name: String, _ value: String? = nil) { self.name = name; self.value = value }
}

/// An HTTP request in wire form.
public struct WireRequest: Sendable {
    public var method: String
    /// Percent-encoded path starting with `/` (path style: `/bucket/key`; virtual-host: `/key`).
    public var path: String
    public var query: [QueryItem]
    public var headers: HeaderFields

    public init(method: String, path: String, query: [QueryItem] = [], headers: HeaderFields = HeaderFields()) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
    }

    /// The query string as sent (`uploads&encoding-type=url`), components strictly encoded.
    public var encodedQuery: String {
        query.map { item in
            let name = PercentEncoding.encode(item.name, keepSlash: false)
            guard let value = item.value else { return name }
            return name + "=" + PercentEncoding.encode(value, keepSlash: false)
        }.joined(separator: "&")
    }

    /// Path and query, as in the request line.
    public var target: String { query.isEmpty ? path : path + "?" + encodedQuery }

    /// Parses a request-line target (`/bkt/k%20x?uploads&max-parts=10`). Nil when the query's
    /// percent-escapes are malformed.
    public init?(method: String, target: String, headers: HeaderFields) {
        let pieces = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var items: [QueryItem] = []
        if pieces.count == 2 && !pieces[1].isEmpty {
            for component in pieces[1].split(separator: "&") {
                let pair = component.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let name = PercentEncoding.decode(String(pair[0])) else { return nil }
                var value: String? = nil
                if pair.count == 2 {
                    guard let decoded = PercentEncoding.decode(String(pair[1])) else { return nil }
                    value = decoded
                }
                items.append(QueryItem(name, value))
            }
        }
        self.init(method: method, path: String(pieces[0]), query: items, headers: headers)
    }

    /// The value of query parameter `name` (`""` for a value-less key), nil when absent.
    public func queryValue(_ name: String) -> String? {
        guard let item = query.first(where: { $0.name == name }) else { return nil }
        return item.value ?? ""
    }
}

/// Percent-encoding as S3 and OBS use it: unreserved characters (`A-Z a-z 0-9 - _ . ~`) kept,
/// everything else as `%XX` of its UTF-8 bytes; `/` kept in paths.
public enum PercentEncoding {
    private static let hex = Array("0123456789ABCDEF".utf8)

    public static func encode(_ text: String, keepSlash: Bool) -> String {
        let hex = Self.hex
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                 UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 15)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Encodes an object key for a URL path (`dir/a b+~é.txt` → `dir/a%20b%2B~%C3%A9.txt`).
    public static func encodePath(_ key: String) -> String { encode(key, keepSlash: true) }

    /// Decodes `%XX` escapes (`+` stays `+`). Nil for a malformed escape or invalid UTF-8.
    public static func decode(_ text: String) -> String? {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
        let bytes = Array(text.utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, let hi = hexDigit(bytes[index + 1]), let lo = hexDigit(bytes[index + 2]) else { return nil }
                out.append(hi << 4 | lo)
                index += 3
            } else {
                out.append(byte)
                index += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension String {
    /// ASCII-only lower-casing (header names and query keys are ASCII).
    public var lowercasedASCII: String {
        guard utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return self }
        return String(decoding: utf8.map(lowercasedASCIIByte), as: UTF8.self)
    }

    /// Whether the string equals `other` with ASCII letters compared case-insensitively; compares
    /// in place, without building lower-cased copies.
    public func equalsIgnoringASCIICase(_ other: String) -> Bool {
        let mine = utf8, theirs = other.utf8
        guard mine.count == theirs.count else { return false }
        return mine.elementsEqual(theirs) { lowercasedASCIIByte($0) == lowercasedASCIIByte($1) }
    }

    /// Whether the string starts with `prefix`, ASCII letters compared case-insensitively, in place.
    public func hasPrefixIgnoringASCIICase(_ prefix: String) -> Bool {
        let mine = utf8, theirs = prefix.utf8
        guard mine.count >= theirs.count else { return false }
        return mine.prefix(theirs.count).elementsEqual(theirs) { lowercasedASCIIByte($0) == lowercasedASCIIByte($1) }
    }

    /// The string without leading and trailing spaces and tabs.
    public var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}

/// `A`-`Z` lower-cased, every other byte as it is.
@inline(__always)
func lowercasedASCIIByte(_ byte: UInt8) -> UInt8 {
    byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
}
