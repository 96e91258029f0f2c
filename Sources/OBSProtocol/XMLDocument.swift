// The protocol's XML bodies as typed values. Each document decodes (client, or server for
// request bodies) and encodes (server, or client for request bodies) in one place, so both
// sides agree on every element name.

/// A protocol XML body: read from and written to its root element.
public protocol XMLWireDocument: Sendable {
    /// The root element's local name.
    static var rootName: String { get }
    /// Reads the document from its root element (the name is checked by `init(parsing:)`).
    init(xml root: XML.Element) throws(XML.ParseError)
    /// The root element as `dialect` writes it (S3 and OBS spell a few things differently).
    func xml(for dialect: Dialect) -> XML.Element
}

extension XMLWireDocument {
    /// Parses a body. Any malformed, truncated or foreign document is a thrown error.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(XML.ParseError) {
        try self.init(checkedRoot: XML.parse(bytes))
    }

    /// Parses a body. Any malformed, truncated or foreign document is a thrown error.
    public init(parsing bytes: [UInt8]) throws(XML.ParseError) {
        try self.init(checkedRoot: XML.parse(bytes))
    }

    /// Parses a body. Any malformed, truncated or foreign document is a thrown error.
    public init(parsing text: String) throws(XML.ParseError) {
        try self.init(checkedRoot: XML.parse(text))
    }

    private init(checkedRoot root: XML.Element) throws(XML.ParseError) {
        guard root.localName == Self.rootName else {
            throw XML.ParseError("expected <\(Self.rootName)>, found <\(root.name)>")
        }
        try self.init(xml: root)
    }

    /// The document with its XML declaration. Replies carry the dialect's namespace; request
    /// bodies may leave it out (`withNamespace: false`), as the official SDK does.
    public func serialized(for dialect: Dialect, withNamespace: Bool = true) -> [UInt8] {
        xml(for: dialect).serialized(namespace: withNamespace ? dialect.xmlNamespace : nil)
    }
}

extension Dialect {
    /// The namespace of reply documents in this dialect.
    public var xmlNamespace: String { self == .obs ? XML.obsNamespace : XML.s3Namespace }
}

// MARK: - Field reading and writing

extension Array where Element == XML.Element {
    /// A leaf element, or nothing when the value is nil.
    static func leaf(_ name: String, _ text: String?) -> [XML.Element] { text.map { [XML.Element.leaf(name, $0)] } ?? [] }
}

extension XML.Element {
    /// A leaf element.
    static func leaf(_ name: String, _ text: String) -> XML.Element { XML.Element(name, text: text) }


    /// The text of an optional child; an empty element counts as absent.
    func optionalText(_ localName: String) -> String? {
        guard let text = childText(localName), !text.isEmpty else { return nil }
        return text
    }

    func requiredInt(_ localName: String) throws(XML.ParseError) -> Int {
        try parsedInt(requiredText(localName), localName)
    }

    func optionalInt(_ localName: String) throws(XML.ParseError) -> Int? {
        guard let text = optionalText(localName) else { return nil }
        return try parsedInt(text, localName)
    }

    func requiredSize(_ localName: String) throws(XML.ParseError) -> Int64 {
        let text = try requiredText(localName)
        guard let value = Int64(text.trimmingSpaces), value >= 0 else { throw XML.ParseError("<\(localName)> is not a size: \(text)") }
        return value
    }

    func optionalBool(_ localName: String) throws(XML.ParseError) -> Bool? {
        guard let text = optionalText(localName) else { return nil }
        return try parsedBool(text, localName)
    }

    func requiredTimestamp(_ localName: String) throws(XML.ParseError) -> Timestamp {
        let text = try requiredText(localName)
        guard let value = Timestamp(iso8601: text.trimmingSpaces) else { throw XML.ParseError("<\(localName)> is not an ISO 8601 time: \(text)") }
        return value
    }

    func requiredPartNumber(_ localName: String) throws(XML.ParseError) -> PartNumber {
        let value = try requiredInt(localName)
        guard let number = PartNumber(value) else { throw XML.ParseError("<\(localName)> \(value) is outside 1…10000") }
        return number
    }

    /// A part-number marker: absent, empty and `0` all mean "from the start".
    func partNumberMarker(_ localName: String) throws(XML.ParseError) -> PartNumber? {
        guard let value = try optionalInt(localName), value != 0 else { return nil }
        guard let number = PartNumber(value) else { throw XML.ParseError("<\(localName)> \(value) is outside 0…10000") }
        return number
    }

    func requiredETag(_ localName: String) throws(XML.ParseError) -> ETag {
        ETag(try requiredText(localName).trimmingSpaces)
    }

    private func parsedInt(_ text: String, _ localName: String) throws(XML.ParseError) -> Int {
        guard let value = Int(text.trimmingSpaces) else { throw XML.ParseError("<\(localName)> is not an integer: \(text)") }
        return value
    }

    private func parsedBool(_ text: String, _ localName: String) throws(XML.ParseError) -> Bool {
        switch text.trimmingSpaces {
        case "true": true
        case "false": false
        default: throw XML.ParseError("<\(localName)> is not true or false: \(text)")
        }
    }
}

extension PercentEncoding {
    /// Decodes form encoding: `+` is a space, then `%XX` escapes (Python's `unquote_plus`).
    /// Nil for a malformed escape or invalid UTF-8.
    static func decodeForm(_ text: String) -> String? {
        decode(text.contains("+") ? String(text.map { $0 == "+" ? " " : $0 }) : text)
    }
}

/// How keys, prefixes, markers and delimiters are written in a listing (`encoding-type`).
public enum KeyEncoding: String, Sendable, Equatable {
    /// Percent-encoded UTF-8; the only way to list keys holding characters XML 1.0 cannot carry.
    case url

    /// Reads the document's `<EncodingType>` (unknown values are an error).
    static func read(from root: XML.Element) throws(XML.ParseError) -> KeyEncoding? {
        guard let text = root.optionalText("EncodingType") else { return nil }
        guard let encoding = KeyEncoding(rawValue: text.lowercasedASCII) else { throw XML.ParseError("unknown EncodingType \(text)") }
        return encoding
    }
}

extension Optional where Wrapped == KeyEncoding {
    /// The wire form of a key or prefix.
    func encode(_ text: String) -> String {
        self == .url ? PercentEncoding.encodePath(text) : text
    }

    /// The plain form of a wire key or prefix; `+` is a space, as the SDKs' `unquote_plus` reads it.
    func decode(_ text: String, _ localName: String) throws(XML.ParseError) -> String {
        guard self == .url else { return text }
        guard let decoded = PercentEncoding.decodeForm(text) else { throw XML.ParseError("<\(localName)> is not URL-encoded: \(text)") }
        return decoded
    }

    func leaf(_ name: String, _ text: String) -> XML.Element { .leaf(name, encode(text)) }

    func leaf(_ name: String, _ text: String?) -> [XML.Element] { .leaf(name, text.map(encode)) }

    func leaf(_ name: String, _ key: ObjectKey?) -> [XML.Element] { leaf(name, key?.rawValue) }

    func encodingTypeElement() -> [XML.Element] { .leaf("EncodingType", self?.rawValue) }

    func requiredKey(_ root: XML.Element, _ localName: String) throws(XML.ParseError) -> ObjectKey {
        ObjectKey(try decode(root.requiredText(localName), localName))
    }

    func optionalKey(_ root: XML.Element, _ localName: String) throws(XML.ParseError) -> ObjectKey? {
        guard let text = root.optionalText(localName) else { return nil }
        return ObjectKey(try decode(text, localName))
    }

    func optionalText(_ root: XML.Element, _ localName: String) throws(XML.ParseError) -> String? {
        guard let text = root.optionalText(localName) else { return nil }
        return try decode(text, localName)
    }

    /// `<CommonPrefixes><Prefix>p</Prefix></CommonPrefixes>`, one element per prefix.
    func commonPrefixes(_ prefixes: [String]) -> [XML.Element] {
        prefixes.map { XML.Element("CommonPrefixes", [leaf("Prefix", $0)]) }
    }

    func readCommonPrefixes(_ root: XML.Element) throws(XML.ParseError) -> [String] {
        var prefixes: [String] = []
        for group in root.children("CommonPrefixes") {
            for prefix in group.children("Prefix") { prefixes.append(try decode(prefix.text, "Prefix")) }
        }
        return prefixes
    }
}

// MARK: - Owners

/// An account as listings and ACLs name it.
public struct Owner: Sendable, Equatable {
    /// The domain (account) ID.
    public var id: String
    public var displayName: String?

    public init(id: String, displayName: String? = nil) {
        self.id = id
        self.displayName = displayName
    }

    init(xml element: XML.Element) throws(XML.ParseError) {
        self.init(id: try element.requiredText("ID"), displayName: element.optionalText("DisplayName"))
    }

    static func optional(_ parent: XML.Element, _ localName: String) throws(XML.ParseError) -> Owner? {
        guard let element = parent.child(localName) else { return nil }
        return try Owner(xml: element)
    }

    func xml(_ name: String) -> XML.Element {
        XML.Element(name, [.leaf("ID", id)] + .leaf("DisplayName", displayName))
    }
}
