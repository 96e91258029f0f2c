// A name in a directory as Linux compares names: byte for byte. Every table keyed by a name
// (the inode table's children, the negative cache, a listing's names) keys by `ExactName`, so
// "café" in NFC and in NFD stay two files as they are two keys in the store; keyed by `String`,
// whose `==` is Unicode canonical equivalence, one would open and overwrite the other.
import OBSProtocol

struct ExactName: Hashable, Sendable, Comparable, CustomStringConvertible {
    let text: String
    init(_ text: String) { self.text = text }
    var description: String { text }

    static func == (lhs: ExactName, rhs: ExactName) -> Bool { lhs.text.hasSameUTF8(as: rhs.text) }
    func hash(into hasher: inout Hasher) { text.hashUTF8(into: &hasher) }
    /// The store's order: by UTF-8 bytes.
    static func < (lhs: ExactName, rhs: ExactName) -> Bool { lhs.text.precedesInUTF8(rhs.text) }
}

extension String {
    /// Whether this path is `directory` or lies beneath it, byte for byte (`hasPrefix` is
    /// canonical equivalence too).
    func isPath(atOrBeneath directory: String) -> Bool {
        hasSameUTF8(as: directory) || isPath(beneath: directory)
    }

    /// Whether this path or key starts with `directory` + "/", byte for byte.
    func isPath(beneath directory: String) -> Bool {
        utf8.count > directory.utf8.count && utf8.starts(with: directory.utf8) && utf8.dropFirst(directory.utf8.count).first == UInt8(ascii: "/")
    }

    /// Whether this key starts with `prefix`, byte for byte.
    func hasUTF8Prefix(_ prefix: String) -> Bool { utf8.starts(with: prefix.utf8) }

    /// Whether this key ends with `suffix`, byte for byte.
    func hasUTF8Suffix(_ suffix: String) -> Bool { utf8.reversed().starts(with: suffix.utf8.reversed()) }

    // Cutting keys and paths by bytes: `dropFirst(prefix.count)` counts Characters, and a `/`
    // followed by a combining mark (a name starting with U+0301) is one Character with it, so
    // "d/\u{301}x" minus the 2 Characters of "d/" would be "x".

    /// This key or path without its first `count` UTF-8 bytes (a `/` boundary or a prefix's
    /// length, so that what is left starts a scalar).
    func droppingUTF8(first count: Int) -> String {
        String(decoding: utf8.dropFirst(count), as: UTF8.self)
    }

    /// This key or path without its last `count` UTF-8 bytes.
    func droppingUTF8(last count: Int) -> String {
        String(decoding: utf8.dropLast(count), as: UTF8.self)
    }

    /// The names between the `/`s, split byte for byte, empty ones left out.
    var pathComponents: [String] {
        utf8.split(separator: UInt8(ascii: "/")).map { String(decoding: $0, as: UTF8.self) }
    }
}
