// A small XML reader and writer for the protocol's documents, without Foundation.
//
// Reader: elements, attributes, text, the five predefined entities, numeric character
// references, CDATA, comments, the XML declaration and processing instructions. DOCTYPE is
// refused (no entity expansion, so no "billion laughs"); nesting is limited. Every malformed or
// truncated input ends in a thrown `XML.ParseError`; the reader moves forward on every step, so
// it cannot loop. Mixed content is not modelled: an element's `text` is the concatenation of its
// own character data, which is all the protocol's leaf elements carry.
//
// Writer: escapes `&`, `<`, `>` (and `"` in attribute values) and writes CR, and tab and LF in
// attribute values, as character references so they survive XML end-of-line and attribute
// normalisation. Characters XML 1.0 cannot carry at all (C0 controls other than tab, LF and CR,
// U+FFFE and U+FFFF) are written as numeric references (`&#x1;`), as S3 does: lossless, and this
// reader reads them back, but strict XML 1.0 parsers (expat, libxml2, hence boto3 and the OBS
// SDK) refuse such a document. A client that may meet such keys asks for `encoding-type=url`,
// with which keys travel percent-encoded and these characters never reach the XML layer.

/// Namespace of the XML reader and writer.
public enum XML {
    /// Default nesting limit of the reader; the protocol's documents nest at most 5 deep.
    public static let defaultDepthLimit = 32

    /// Namespaces written on a document's root element.
    public static let obsNamespace = "http://obs.myhwclouds.com/doc/2015-06-30/"
    public static let s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

    /// One attribute as written (`xsi:type="Group"`).
    public struct Attribute: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) { self.name = name; self.value = value }
    }

    /// An element: its qualified name, attributes, child elements and own character data.
    public struct Element: Sendable, Equatable {
        /// The name as written, with any prefix (`xsi:type` style names keep their prefix).
        public var name: String
        public var attributes: [Attribute]
        public var children: [Element]
        /// The element's own character data (entities and CDATA resolved), children excluded.
        public var text: String

        public init(_ name: String, text: String = "", attributes: [Attribute] = [], children: [Element] = []) {
            self.name = name
            self.text = text
            self.attributes = attributes
            self.children = children
        }

        /// A container element.
        public init(_ name: String, attributes: [Attribute] = [], _ children: [Element]) {
            self.init(name, text: "", attributes: attributes, children: children)
        }

        /// The name without its namespace prefix.
        public var localName: Substring { XML.localName(name) }

        /// The first child with this local name.
        public func child(_ localName: String) -> Element? {
            children.first { $0.hasLocalName(localName) }
        }

        /// Every child with this local name, in document order.
        public func children(_ localName: String) -> [Element] {
            children.filter { $0.hasLocalName(localName) }
        }

        /// Whether the local name is `localName` (which has no prefix), compared code unit by code
        /// unit as XML names are: the name ends with it, after nothing or after a prefix's colon.
        /// (Listings look up several children of each of a thousand entries this way.)
        func hasLocalName(_ localName: String) -> Bool {
            let name = self.name.utf8, wanted = localName.utf8
            guard name.count >= wanted.count, name.suffix(wanted.count).elementsEqual(wanted) else { return false }
            return name.count == wanted.count || name.dropLast(wanted.count).last == UInt8(ascii: ":")
        }

        /// The text of the first child with this local name, nil when there is none.
        public func childText(_ localName: String) -> String? { child(localName)?.text }

        /// The first child with this local name, or an error naming what is missing.
        public func requiredChild(_ localName: String) throws(ParseError) -> Element {
            guard let element = child(localName) else { throw ParseError.missing(localName, in: name) }
            return element
        }

        /// The text of a required child.
        public func requiredText(_ localName: String) throws(ParseError) -> String {
            try requiredChild(localName).text
        }

        /// The value of the attribute with this local name (any prefix), nil when absent.
        public func attribute(_ localName: String) -> String? {
            attributes.first { XML.localName($0.name) == localName }?.value
        }

        /// The document, with the XML declaration and, when given, `xmlns` on this element.
        public func serialized(namespace: String? = nil) -> [UInt8] {
            var out = Array(#"<?xml version="1.0" encoding="UTF-8"?>"#.utf8)
            out.reserveCapacity(256)
            var root = self
            if let namespace { root.attributes.insert(Attribute("xmlns", namespace), at: 0) }
            root.write(to: &out)
            return out
        }

        /// Appends this element (no declaration) to `out`.
        public func write(to out: inout [UInt8]) {
            out.append(UInt8(ascii: "<"))
            out.append(contentsOf: name.utf8)
            for attribute in attributes {
                out.append(UInt8(ascii: " "))
                out.append(contentsOf: attribute.name.utf8)
                out.append(contentsOf: #"=""#.utf8)
                XML.escape(attribute.value, inAttribute: true, to: &out)
                out.append(UInt8(ascii: "\""))
            }
            if children.isEmpty && text.isEmpty {
                out.append(contentsOf: "/>".utf8)
                return
            }
            out.append(UInt8(ascii: ">"))
            XML.escape(text, inAttribute: false, to: &out)
            for child in children { child.write(to: &out) }
            out.append(contentsOf: "</".utf8)
            out.append(contentsOf: name.utf8)
            out.append(UInt8(ascii: ">"))
        }
    }

    /// Why a document could not be read: what was wrong and the byte offset it was found at
    /// (nil for errors found after parsing, such as a missing element).
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var message: String
        public var offset: Int?

        public init(_ message: String, offset: Int? = nil) {
            self.message = message
            self.offset = offset
        }

        public var description: String { offset.map { "\(message) at byte \($0)" } ?? message }

        static func missing(_ child: String, in parent: String) -> ParseError {
            ParseError("<\(parent)> has no <\(child)>")
        }
    }

    /// Parses a whole document and returns its root element.
    public static func parse(_ bytes: UnsafeRawBufferPointer, depthLimit: Int = defaultDepthLimit) throws(ParseError) -> Element {
        var reader = Reader(bytes: bytes, depthLimit: depthLimit)
        return try reader.document()
    }

    /// Parses a whole document and returns its root element.
    public static func parse(_ bytes: [UInt8], depthLimit: Int = defaultDepthLimit) throws(ParseError) -> Element {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(ParseError) in try parse(buffer, depthLimit: depthLimit) }
        }
        return try result.get()
    }

    /// Parses a whole document and returns its root element.
    public static func parse(_ text: String, depthLimit: Int = defaultDepthLimit) throws(ParseError) -> Element {
        try parse(Array(text.utf8), depthLimit: depthLimit)
    }

    static func localName(_ name: String) -> Substring {
        guard let colon = name.utf8.lastIndex(of: UInt8(ascii: ":")) else { return Substring(name) }
        return name[name.utf8.index(after: colon)...]
    }

    /// Appends `text` escaped for element content or a double-quoted attribute value.
    /// Works on UTF-8 bytes: every character needing care is ASCII, except U+FFFE and U+FFFF
    /// (`EF BF BE`, `EF BF BF`).
    static func escape(_ text: String, inAttribute: Bool, to out: inout [UInt8]) {
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            switch byte {
            case UInt8(ascii: "&"): out.append(contentsOf: "&amp;".utf8)
            case UInt8(ascii: "<"): out.append(contentsOf: "&lt;".utf8)
            case UInt8(ascii: ">"): out.append(contentsOf: "&gt;".utf8)
            case UInt8(ascii: "\""): if inAttribute { out.append(contentsOf: "&quot;".utf8) } else { out.append(byte) }
            case UInt8(ascii: "\t"), UInt8(ascii: "\n"): if inAttribute { writeCharacterReference(UInt32(byte), to: &out) } else { out.append(byte) }
            case 0x00..<0x20: writeCharacterReference(UInt32(byte), to: &out)
            case 0xEF:
                // A String's UTF-8 is valid, so a lead byte EF is followed by two more.
                guard let second = utf8.next(), let third = utf8.next() else { return }
                if second == 0xBF && (third == 0xBE || third == 0xBF) {
                    writeCharacterReference(0xFFC0 | UInt32(third & 0x3F), to: &out)
                } else {
                    out.append(contentsOf: [byte, second, third])
                }
            default: out.append(byte)
            }
        }
    }

    private static func writeCharacterReference(_ value: UInt32, to out: inout [UInt8]) {
        let hex = Array("0123456789ABCDEF".utf8)
        out.append(contentsOf: "&#x".utf8)
        var digits: [UInt8] = []
        var rest = value
        repeat {
            digits.append(hex[Int(rest & 15)])
            rest >>= 4
        } while rest != 0
        out.append(contentsOf: digits.reversed())
        out.append(UInt8(ascii: ";"))
    }
}

// MARK: - Reader

extension XML {
    /// A single-pass, non-recursive reader over a byte buffer.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let depthLimit: Int
        var position = 0

        /// An element being read, with its character data so far.
        private struct OpenElement {
            var element: Element
            var text: [UInt8] = []
        }

        init(bytes: UnsafeRawBufferPointer, depthLimit: Int) {
            self.bytes = bytes
            self.depthLimit = depthLimit
        }

        mutating func document() throws(ParseError) -> Element {
            if hasPrefix([0xEF, 0xBB, 0xBF]) { position += 3 }
            try skipMisc()
            guard position < bytes.count else { throw ParseError("no root element", offset: position) }
            guard bytes[position] == UInt8(ascii: "<") else { throw ParseError("text before the root element", offset: position) }
            let root = try rootElement()
            try skipMisc()
            guard position == bytes.count else { throw ParseError("content after the root element", offset: position) }
            return root
        }

        // MARK: Prolog and epilog

        /// Skips whitespace, comments and processing instructions (the declaration included).
        private mutating func skipMisc() throws(ParseError) {
            while true {
                skipWhitespace()
                if hasPrefix("<?") {
                    try skipProcessingInstruction()
                } else if hasPrefix("<!--") {
                    try skipComment()
                } else if hasPrefix("<!") {
                    throw ParseError("DOCTYPE and other declarations are not supported", offset: position)
                } else {
                    return
                }
            }
        }

        private mutating func skipProcessingInstruction() throws(ParseError) {
            let start = position
            position += 2
            let target = readName()
            guard !target.isEmpty else { throw ParseError("processing instruction without a target", offset: start) }
            try skip(past: "?>", what: "processing instruction", start: start)
        }

        private mutating func skipComment() throws(ParseError) {
            let start = position
            position += 4
            try skip(past: "-->", what: "comment", start: start)
        }

        // MARK: Elements

        private mutating func rootElement() throws(ParseError) -> Element {
            var stack: [OpenElement] = []
            while true {
                guard position < bytes.count else {
                    throw ParseError("document ends inside <\(stack.last?.element.name ?? "")>", offset: position)
                }
                let byte = bytes[position]
                if byte == UInt8(ascii: "<") {
                    if hasPrefix("</") {
                        let closed = try endTag(closing: stack.popLast())
                        if stack.isEmpty { return closed }
                        stack[stack.count - 1].element.children.append(closed)
                    } else if hasPrefix("<!--") {
                        try skipComment()
                    } else if hasPrefix("<![CDATA[") {
                        guard !stack.isEmpty else { throw ParseError("CDATA outside an element", offset: position) }
                        let start = position
                        position += 9
                        let contentStart = position
                        try skip(past: "]]>", what: "CDATA section", start: start)
                        stack[stack.count - 1].text.append(contentsOf: bytes[contentStart..<(position - 3)])
                    } else if hasPrefix("<?") {
                        try skipProcessingInstruction()
                    } else if hasPrefix("<!") {
                        throw ParseError("declaration inside an element", offset: position)
                    } else {
                        guard stack.count < depthLimit else { throw ParseError("elements nested deeper than \(depthLimit)", offset: position) }
                        let (element, selfClosing) = try startTag()
                        if selfClosing {
                            if stack.isEmpty { return element }
                            stack[stack.count - 1].element.children.append(element)
                        } else {
                            stack.append(OpenElement(element: element))
                        }
                    }
                } else if stack.isEmpty {
                    throw ParseError("text outside the root element", offset: position)
                } else if byte == UInt8(ascii: "&") {
                    try reference(into: &stack[stack.count - 1].text)
                } else {
                    try characterData(into: &stack[stack.count - 1].text)
                }
            }
        }

        /// Reads `<name attr="v" …>` or `<name …/>`.
        private mutating func startTag() throws(ParseError) -> (Element, selfClosing: Bool) {
            let start = position
            position += 1
            let name = readName()
            guard !name.isEmpty else { throw ParseError("missing element name", offset: start) }
            var element = Element(name)
            while true {
                let hadSpace = skipWhitespace()
                guard position < bytes.count else { throw ParseError("document ends inside the tag <\(name)>", offset: start) }
                if bytes[position] == UInt8(ascii: ">") {
                    position += 1
                    return (element, false)
                }
                if hasPrefix("/>") {
                    position += 2
                    return (element, true)
                }
                guard hadSpace else { throw ParseError("expected whitespace, `>` or `/>` in <\(name)>", offset: position) }
                let attribute = try readAttribute()
                if element.attributes.contains(where: { $0.name == attribute.name }) {
                    throw ParseError("duplicate attribute \(attribute.name) in <\(name)>", offset: position)
                }
                element.attributes.append(attribute)
            }
        }

        private mutating func readAttribute() throws(ParseError) -> Attribute {
            let start = position
            let name = readName()
            guard !name.isEmpty else { throw ParseError("malformed attribute", offset: start) }
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "=") else {
                throw ParseError("attribute \(name) without a value", offset: position)
            }
            position += 1
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") || bytes[position] == UInt8(ascii: "'") else {
                throw ParseError("attribute \(name) value not quoted", offset: position)
            }
            let quote = bytes[position]
            position += 1
            var value: [UInt8] = []
            while true {
                guard position < bytes.count else { throw ParseError("document ends inside attribute \(name)", offset: start) }
                let byte = bytes[position]
                switch byte {
                case quote:
                    position += 1
                    return Attribute(name, try string(value, at: start))
                case UInt8(ascii: "<"):
                    throw ParseError("`<` in attribute \(name)", offset: position)
                case UInt8(ascii: "&"):
                    try reference(into: &value)
                case UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                    // Attribute-value normalisation: literal whitespace becomes a space
                    // (CR LF counts once).
                    if byte == UInt8(ascii: "\r") && position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "\n") { position += 1 }
                    value.append(UInt8(ascii: " "))
                    position += 1
                default:
                    guard byte >= 0x20 else { throw ParseError("control character in attribute \(name)", offset: position) }
                    value.append(byte)
                    position += 1
                }
            }
        }

        /// Reads `</name>` and returns the finished element it closes.
        private mutating func endTag(closing open: OpenElement?) throws(ParseError) -> Element {
            let start = position
            position += 2
            let name = readName()
            guard var open else { throw ParseError("unexpected end tag </\(name)>", offset: start) }
            guard name == open.element.name else {
                throw ParseError("end tag </\(name)> does not match <\(open.element.name)>", offset: start)
            }
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ">") else {
                throw ParseError("malformed end tag </\(name)", offset: start)
            }
            position += 1
            open.element.text = try string(open.text, at: start)
            return open.element
        }

        // MARK: Character data

        /// Copies character data up to the next `<` or `&`, normalising line ends.
        private mutating func characterData(into text: inout [UInt8]) throws(ParseError) {
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "<") || byte == UInt8(ascii: "&") { return }
                if byte == UInt8(ascii: "\r") {
                    if position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "\n") { position += 1 }
                    text.append(UInt8(ascii: "\n"))
                } else {
                    guard byte >= 0x20 || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") else {
                        throw ParseError("control character \(byte) in text", offset: position)
                    }
                    text.append(byte)
                }
                position += 1
            }
        }

        /// Reads `&name;` or `&#N;` / `&#xH;` at `position` and appends its UTF-8.
        private mutating func reference(into text: inout [UInt8]) throws(ParseError) {
            let start = position
            position += 1
            var end = position
            while end < bytes.count && bytes[end] != UInt8(ascii: ";") && end - position < 12 { end += 1 }
            guard end < bytes.count, bytes[end] == UInt8(ascii: ";") else { throw ParseError("unterminated reference", offset: start) }
            let body = bytes[position..<end]
            position = end + 1
            let scalarValue: UInt32
            if body.first == UInt8(ascii: "#") {
                guard let value = Reader.numericReference(body.dropFirst()) else {
                    throw ParseError("malformed character reference", offset: start)
                }
                scalarValue = value
            } else if let value = Reader.predefinedEntities.first(where: { $0.name.elementsEqual(body) })?.value {
                scalarValue = value
            } else {
                throw ParseError("unknown entity &\(String(decoding: body, as: UTF8.self));", offset: start)
            }
            guard let scalar = Unicode.Scalar(scalarValue) else {
                throw ParseError("reference to an invalid character", offset: start)
            }
            text.append(contentsOf: String(scalar).utf8)
        }

        /// The five entities XML predefines.
        private static let predefinedEntities: [(name: [UInt8], value: UInt32)] = [
            (Array("lt".utf8), 0x3C), (Array("gt".utf8), 0x3E), (Array("amp".utf8), 0x26),
            (Array("apos".utf8), 0x27), (Array("quot".utf8), 0x22),
        ]

        /// The value of `123` or `x7B`; nil when malformed or beyond U+10FFFF.
        private static func numericReference(_ digits: Slice<UnsafeRawBufferPointer>) -> UInt32? {
            var digits = digits
            var radix: UInt32 = 10
            if digits.first == UInt8(ascii: "x") {
                radix = 16
                digits = digits.dropFirst()
            }
            guard !digits.isEmpty else { return nil }
            var value: UInt32 = 0
            for c in digits {
                let digit: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f") where radix == 16: digit = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F") where radix == 16: digit = UInt32(c - UInt8(ascii: "A") + 10)
                default: return nil
                }
                value = value * radix + digit
                if value > 0x10FFFF { return nil }
            }
            return value
        }

        // MARK: Lexing helpers

        private func string(_ utf8: [UInt8], at offset: Int) throws(ParseError) -> String {
            guard let text = String(validating: utf8, as: UTF8.self) else { throw ParseError("invalid UTF-8", offset: offset) }
            return text
        }

        /// Reads a name (letters, digits, `_ : - .` and any non-ASCII byte); empty when none.
        private mutating func readName() -> String {
            let start = position
            while position < bytes.count {
                let c = bytes[position]
                let isNameByte = switch c {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "_"), UInt8(ascii: ":"), 0x80...:
                    true
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."):
                    position > start
                default:
                    false
                }
                guard isNameByte else { break }
                position += 1
            }
            return String(decoding: bytes[start..<position], as: UTF8.self)
        }

        @discardableResult
        private mutating func skipWhitespace() -> Bool {
            let start = position
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return position > start
                }
            }
            return position > start
        }

        /// Moves `position` just past the next `terminator`.
        private mutating func skip(past terminator: StaticString, what: String, start: Int) throws(ParseError) {
            while position < bytes.count {
                if hasPrefix(terminator) {
                    position += terminator.utf8CodeUnitCount
                    return
                }
                position += 1
            }
            throw ParseError("unterminated \(what)", offset: start)
        }

        private func hasPrefix(_ prefix: StaticString) -> Bool {
            let count = prefix.utf8CodeUnitCount
            guard position + count <= bytes.count else { return false }
            return prefix.withUTF8Buffer { pattern in
                for index in 0..<count where bytes[position + index] != pattern[index] { return false }
                return true
            }
        }

        private func hasPrefix(_ prefix: [UInt8]) -> Bool {
            guard position + prefix.count <= bytes.count else { return false }
            return prefix.indices.allSatisfy { bytes[position + $0] == prefix[$0] }
        }
    }
}
