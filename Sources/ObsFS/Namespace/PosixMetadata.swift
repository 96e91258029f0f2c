// POSIX metadata in object metadata, in the format s3fs (and Huawei's obsfs) write, so that a
// bucket looks the same through either tool and through obsmount:
//
// | metadata name | value | example |
// |---|---|---|
// | `mode` | decimal `st_mode`; s3fs writes the type bits for files and links, not for directories | `33188` (0100644) |
// | `uid`, `gid` | decimal | `1000` |
// | `rdev` | decimal `st_rdev` of a device node (obsmount's own; s3fs keeps none) | `259` (1,3: /dev/null) |
// | `mtime`, `atime`, `ctime` | seconds since the epoch, optionally `.` and 9 digits of nanoseconds | `1577934245.123000000` |
// | `xattr` | JSON object name → Base64 of the value (percent-encoded on the wire by the client) | `{"user.foo":"YmFy"}` |
//
// The client adds the dialect's prefix (`x-amz-meta-` or `x-obs-meta-`). A missing or
// unreadable value falls back to the mount's defaults (`uid=`, `gid=`, `umask=`, the object's
// Last-Modified).
import OBSHashing
import OBSProtocol

#if canImport(Glibc)
import Glibc
#endif

/// A file time with nanoseconds, as `stat` reports it.
public struct FileTime: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var seconds: Int64
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public init(_ timestamp: Timestamp) {
        seconds = timestamp.secondsSinceEpoch
        nanoseconds = Int32(timestamp.millisecondsSinceEpoch - seconds * 1000) * 1_000_000
    }

    public static func now() -> FileTime {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return FileTime(seconds: Int64(now.tv_sec), nanoseconds: Int32(now.tv_nsec))
    }

    public static func < (lhs: FileTime, rhs: FileTime) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }

    /// `SECONDS` when there are no nanoseconds, else `SECONDS.NNNNNNNNN` (s3fs's two forms).
    public var description: String {
        guard nanoseconds != 0 else { return String(seconds) }
        let fraction = String(nanoseconds)
        return "\(seconds).\(String(repeating: "0", count: 9 - fraction.count))\(fraction)"
    }

    /// Reads either form; nil for anything else.
    init?(metadataValue text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let seconds = Int64(parts[0]) else { return nil }
        var nanoseconds: Int32 = 0
        if parts.count == 2 {
            let digits = parts[1].prefix(9)
            guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let value = Int32(digits) else { return nil }
            nanoseconds = value * Int32(pow10(9 - digits.count))
        }
        self.init(seconds: seconds, nanoseconds: nanoseconds)
    }
}

private func pow10(_ exponent: Int) -> Int { (0..<exponent).reduce(1) { result, _ in result * 10 } }

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// The POSIX facts an object's metadata carries; each is nil when the object does not say.
public struct PosixMetadata: Sendable, Equatable {
    /// Permission bits (`07777`).
    public var permissions: UInt32?
    /// The type the mode's `S_IFMT` bits name, when they name one.
    public var kind: FileKind?
    /// `st_rdev` of a device node.
    public var device: UInt64?
    public var uid: UInt32?
    public var gid: UInt32?
    public var modified: FileTime?
    public var accessed: FileTime?
    public var changed: FileTime?
    /// Extended attributes outside `user.obs.` (name → value); names compared byte for byte,
    /// as Linux compares them.
    var extendedAttributes: [ExactName: [UInt8]] = [:]

    public init() {}

    /// The metadata names this type reads and writes; `user.obs.meta.*` does not show them.
    static let names: Set<String> = ["mode", "rdev", "uid", "gid", "mtime", "atime", "ctime", "xattr"]

    /// Reads the s3fs names out of an object's metadata (names without the dialect prefix).
    public init(metadata: [String: String]) {
        if let text = metadata["mode"], let mode = UInt32(text) {
            permissions = mode & 0o7777
            kind = FileKind(mode: mode)
        }
        device = metadata["rdev"].flatMap { UInt64($0) }
        uid = metadata["uid"].flatMap { UInt32($0) }
        gid = metadata["gid"].flatMap { UInt32($0) }
        modified = metadata["mtime"].flatMap(FileTime.init(metadataValue:))
        accessed = metadata["atime"].flatMap(FileTime.init(metadataValue:))
        changed = metadata["ctime"].flatMap(FileTime.init(metadataValue:))
        if let text = metadata["xattr"] {
            let decoded = PercentEncoding.decode(text) ?? text
            for (name, value) in FlatJSON.parseStringObject(decoded) ?? [] {
                if let bytes = Base64.decode(value) { extendedAttributes[ExactName(name)] = bytes }
            }
        }
    }

    /// Writes these facts into `metadata` for an object of `kind` (type bits as s3fs writes
    /// them: on everything but directories). Nil facts remove their names.
    public func write(into metadata: inout [String: String], kind: FileKind) {
        if let permissions {
            metadata["mode"] = String((kind == .directory ? 0 : kind.typeBits) | permissions)
        } else {
            metadata["mode"] = nil
        }
        metadata["rdev"] = device.map { String($0) }
        metadata["uid"] = uid.map { String($0) }
        metadata["gid"] = gid.map { String($0) }
        metadata["mtime"] = modified?.description
        metadata["atime"] = accessed?.description
        metadata["ctime"] = changed?.description
        metadata["xattr"] = extendedAttributes.isEmpty ? nil
            : FlatJSON.stringObject(extendedAttributes.sorted { $0.key < $1.key }.map { ($0.key.text, Base64.encode($0.value)) })
    }
}

/// The one JSON shape s3fs's `xattr` uses: an object of string values. Its members are a list,
/// not a `[String: String]`, whose keys would merge names equal by canonical equivalence.
enum FlatJSON {
    static func stringObject(_ members: [(name: String, value: String)]) -> String {
        "{" + members.map { "\(quote($0.name)):\(quote($0.value))" }.joined(separator: ",") + "}"
    }

    private static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `{"a":"b",…}`; nil when the text is not such an object.
    static func parseStringObject(_ text: String) -> [(name: String, value: String)]? {
        var scalars = Array(text.unicodeScalars)[...]
        func skipSpace() { while let first = scalars.first, first == " " || first == "\n" || first == "\t" || first == "\r" { scalars.removeFirst() } }
        func expect(_ scalar: Unicode.Scalar) -> Bool {
            skipSpace()
            guard scalars.first == scalar else { return false }
            scalars.removeFirst()
            return true
        }
        func string() -> String? {
            guard expect("\"") else { return nil }
            var out = String.UnicodeScalarView()
            while let scalar = scalars.popFirst() {
                switch scalar {
                case "\"": return String(out)
                case "\\":
                    guard let escaped = scalars.popFirst() else { return nil }
                    switch escaped {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "r": out.append("\r")
                    case "b": out.append("\u{8}")
                    case "f": out.append("\u{c}")
                    case "u":
                        let hex = String(String.UnicodeScalarView(scalars.prefix(4)))
                        guard hex.count == 4, let value = UInt32(hex, radix: 16), let decoded = Unicode.Scalar(value) else { return nil }
                        scalars.removeFirst(4)
                        out.append(decoded)
                    default: out.append(escaped)
                    }
                default: out.append(scalar)
                }
            }
            return nil
        }
        guard expect("{") else { return nil }
        var members: [(name: String, value: String)] = []
        if expect("}") { return members }
        repeat {
            guard let name = string(), expect(":"), let value = string() else { return nil }
            members.append((name, value))
        } while expect(",")
        guard expect("}") else { return nil }
        skipSpace()
        return scalars.isEmpty ? members : nil
    }
}
