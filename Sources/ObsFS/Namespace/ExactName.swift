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
}
