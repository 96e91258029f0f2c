// The upload-option mount options (`-o storage_class=COLD,acl=private,…`): the mount's defaults
// for every new file. Each option is a `user.obs.*` attribute with `_` for `-`
// (`storage_class` ↔ `user.obs.storage-class`, `meta.NAME` ↔ `user.obs.meta.NAME`) and is parsed
// and checked by the same code as the attribute; a few options exist only here (the SSE-C key
// file, Content-Type inference), and `encoding_type=` sets the client's value (initiations and
// listings) rather than a default in `defaults`. The general `-o` parser splits its lists
// with `MountOptionList.split` and hands every name it does not know to
// `UploadMountOptions.apply(name:value:now:)`, then calls `check(now:)` once all are read.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import OBSHashing
import OBSProtocol
import SystemFiles


/// The mount's upload defaults and what attribute values may refer to.
public struct UploadMountOptions: Sendable {
    /// Options of every new file before directory and file attributes override them.
    public var defaults = ObjectOptions()
    /// `content_type_inference=on|off`: infer Content-Type from the file name when no level sets one.
    public var contentTypeInference = true
    /// The extension table, with the mount's `content_type.EXT=TYPE` entries.
    public var contentTypes = ContentTypeTable.builtIn
    /// The key from `sse_c_key_file=`: sent for SSE-C uploads and reads, selected by `sse=c`.
    public var customerKey: CustomerKey?
    /// `encoding_type=url|none`: the `encoding-type` of initiations and listings; nil (`none`)
    /// leaves the parameter out, for S3-compatible stores that refuse it. With `url` (the default)
    /// reply keys arrive URL-encoded and are decoded, so keys holding characters XML 1.0 cannot
    /// carry survive. `user.obs.encoding-type` on a file or directory overrides it for initiations.
    public var keyEncoding: KeyEncoding? = .url
    /// The last `sse=` was `c`; the key file may come before or after it in the list.
    private var selectsCustomerKey = false

    public init() {}

    static let contentTypePrefix = "content_type."

    /// Applies one option; `value` is nil for a bare flag. Unknown names are refused as
    /// "unknown option", so the general parser may delegate its default case here.
    public mutating func apply(name: String, value: String?, now: Timestamp) throws(MountOptionError) {
        let option = value.map { "\(name)=\($0)" } ?? name
        func fail(_ reason: String) -> MountOptionError { MountOptionError(option: option, reason: reason) }
        func required() throws(MountOptionError) -> String {
            guard let value, !value.isEmpty else { throw fail("needs a value (\(name)=…)") }
            return value
        }
        switch name {
        case "content_type_inference":
            guard let enabled = ["on": true, "off": false][try required()] else { throw fail("must be on or off") }
            contentTypeInference = enabled
        case "sse_c_key_file":
            customerKey = try CustomerKeyFile.load(path: try required(), option: option)
            if selectsCustomerKey { defaults.encryption = .customer(customerKey!) }
        case "encoding_type":
            guard let choice = KeyEncodingChoice(rawValue: try required()) else { throw fail("must be url or none") }
            keyEncoding = choice.keyEncoding
        case "sse" where value == "c":
            selectsCustomerKey = true
            defaults.encryption = customerKey.map { .customer($0) }
        case "sse":
            selectsCustomerKey = false
            try applyAttribute(name, try required(), option, now)
        case _ where selectsCustomerKey && name.hasPrefix("sse_kms_"):
            throw fail("applies to SSE-KMS only; sse is c")
        case "meta":
            let text = try required()
            guard let colon = text.firstIndex(of: ":") else { throw fail("must be meta=NAME:VALUE") }
            try applyAttribute("\(ObjectAttributeName.metadataPrefix)\(text[..<colon])", String(text[text.index(after: colon)...]), option, now)
        case "sse_kms_bucket_key" where value == nil:
            try applyAttribute(name, "true", option, now)
        case _ where name.hasPrefix(UploadMountOptions.contentTypePrefix):
            let fileExtension = String(name.dropFirst(UploadMountOptions.contentTypePrefix.count))
            let type = try required()
            guard !fileExtension.isEmpty, ContentTypeTable.isMediaType(type) else {
                throw fail("must be content_type.EXT=TYPE/SUBTYPE")
            }
            contentTypes.set(type, forExtension: fileExtension)
        default:
            try applyAttribute(name, try required(), option, now)
        }
    }

    /// Checks the rules that involve several options (both halves of the object lock, a bucket
    /// key with its key id, `sse=c` with its key file, the metadata size), once every option is read.
    public func check(now: Timestamp) throws(MountOptionError) {
        if selectsCustomerKey && customerKey == nil {
            throw MountOptionError(option: "sse=c", reason: "needs sse_c_key_file=PATH (SSE-C keys come only from a key file)")
        }
        do {
            try EffectiveOptions.check(defaults, now: now)
        } catch {
            let name = error.attribute.dropFirst(ObjectAttributeName.namespace.count)
            throw MountOptionError(option: ObjectAttributeName.mountOptionName(forSuffix: String(name)), reason: error.message)
        }
    }

    /// An option that is a `user.obs.*` attribute under its mount-option name.
    private mutating func applyAttribute(_ name: String, _ value: String, _ option: String, _ now: Timestamp) throws(MountOptionError) {
        let attribute: ObjectAttributeName?
        do {
            attribute = try ObjectAttributeName.parse(ObjectAttributeName.namespace + ObjectAttributeName.attributeSuffix(forMountOption: name))
        } catch {
            throw MountOptionError(option: option, reason: error.errno == EINVAL ? error.message : "unknown option")
        }
        // The round trip refuses the attribute spelling of a name (`storage-class`); metadata
        // and persistent-header names are case-insensitive.
        guard let attribute, !attribute.isReadOnly, attribute.mountOptionName == name.lowercasedASCII else {
            throw MountOptionError(option: option, reason: "unknown option")
        }
        do {
            try attribute.apply(text: value, to: &defaults, mount: self, now: now)
        } catch {
            throw MountOptionError(option: option, reason: error.message)
        }
    }
}

extension ObjectAttributeName {
    /// The attribute's mount-option name: `storage_class`, `grant_read_acp`, `meta.NAME`.
    public var mountOptionName: String { ObjectAttributeName.mountOptionName(forSuffix: suffix) }

    static func mountOptionName(forSuffix suffix: String) -> String {
        isNamed(suffix) ? suffix : suffix.replacing("-", with: "_")
    }

    static func attributeSuffix(forMountOption name: String) -> String {
        isNamed(name) ? name : name.replacing("_", with: "-")
    }

    /// `meta.NAME` and `persistent.NAME` keep their names as written.
    private static func isNamed(_ suffix: String) -> Bool {
        suffix.hasPrefix(metadataPrefix) || suffix.hasPrefix(persistentPrefix)
    }
}

/// Splitting a `-o` list the way libfuse does: options are separated by commas; a backslash
/// makes the next character literal (`\,` is a comma inside a value, `\\` a backslash) and
/// `\NNN` (three octal digits) is that byte. A backslash at the very end stays as it is.
public enum MountOptionList {
    /// The options of `list`, unescaped; empty options are dropped.
    public static func split(_ list: String) -> [String] {
        var options: [String] = []
        var current: [UInt8] = []
        let bytes = Array(list.utf8)
        var index = 0
        func isOctal(_ offset: Int, _ highest: UInt8) -> Bool {
            offset < bytes.count && bytes[offset] >= UInt8(ascii: "0") && bytes[offset] <= highest
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: ",") {
                if !current.isEmpty { options.append(String(decoding: current, as: UTF8.self)) }
                current = []
                index += 1
            } else if byte == UInt8(ascii: "\\"), index + 1 < bytes.count {
                if isOctal(index + 1, UInt8(ascii: "3")), isOctal(index + 2, UInt8(ascii: "7")), isOctal(index + 3, UInt8(ascii: "7")) {
                    current.append(bytes[(index + 1)...(index + 3)].reduce(0) { $0 << 3 | ($1 - UInt8(ascii: "0")) })
                    index += 4
                } else {
                    current.append(bytes[index + 1])
                    index += 2
                }
            } else {
                current.append(byte)
                index += 1
            }
        }
        if !current.isEmpty { options.append(String(decoding: current, as: UTF8.self)) }
        return options
    }
}

/// The SSE-C key file named by `sse_c_key_file=`: 32 raw bytes, or their base64 (44 characters,
/// trailing whitespace allowed). Refused unless it is a regular file that only its owner may
/// access (mode 0600 or 0400). Its content never appears in an error.
public enum CustomerKeyFile {
    static let keyBytes = 32
    /// Longer files are refused without being read further.
    static let maximumFileBytes = 256

    /// Reads the key at `path`; errors name `option` (the mount option as written).
    public static func load(path: String, option: String) throws(MountOptionError) -> CustomerKey {
        func fail(_ reason: String) -> MountOptionError { MountOptionError(option: option, reason: reason) }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw fail("cannot open the key file: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw fail("cannot stat the key file: \(String(cString: strerror(errno)))") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw fail("the key file is not a regular file") }
        let access = status.st_mode & 0o777
        guard access & 0o077 == 0 else {
            throw fail("the key file may be read or written by group or others (mode \(String(access, radix: 8))); chmod 600 it")
        }
        var content = [UInt8](repeating: 0, count: maximumFileBytes + 1)
        defer { zeroize(&content) }
        var length = 0
        while length < content.count {
            let count = FileSystem.retryingInterrupts { content.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + length, $0.count - length) } }
            guard count >= 0 else { throw fail("cannot read the key file: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            length += count
        }
        guard let key = decodeKey(content[..<length]) else {
            throw fail("the key file must hold a 256-bit key: 32 raw bytes or their base64")
        }
        return CustomerKey(key: key)
    }

    /// The key in `content`: exactly 32 bytes are the raw key; otherwise base64 text of 32 bytes.
    static func decodeKey(_ content: ArraySlice<UInt8>) -> SecretBytes? {
        if content.count == keyBytes { return SecretBytes(Array(content)) }
        var text = content
        while let last = text.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") || last == UInt8(ascii: " ") {
            text = text.dropLast()
        }
        guard text.count == (keyBytes + 2) / 3 * 4, var decoded = Base64.decode(String(decoding: text, as: UTF8.self)) else { return nil }
        defer { zeroize(&decoded) }
        return decoded.count == keyBytes ? SecretBytes(decoded) : nil
    }
}
