// The mount's `-o` options and its `BUCKET[:/PREFIX]` source, parsed and validated before
// anything is mounted. Every option is documented in mount-options/README.md.
import OBSProtocol

/// A mount option that is unknown, malformed or out of range. The CLI exits with status 2.
public struct MountOptionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The option as the user wrote it (`part_size=1k`).
    public let option: String
    public let reason: String

    public init(option: String, reason: String) {
        self.option = option
        self.reason = reason
    }

    public var description: String { "bad mount option '\(option)': \(reason)" }
}

/// A `BUCKET[:/PREFIX]` argument that cannot be used. The CLI exits with status 2.
public struct MountSourceError: Error, Sendable, Equatable, CustomStringConvertible {
    public let source: String
    public let reason: String
    public var description: String { "bad BUCKET[:/PREFIX] '\(source)': \(reason)" }
}

/// What to mount: a bucket and an optional key prefix that becomes the root directory.
public struct MountSource: Sendable, Equatable, CustomStringConvertible {
    public let bucket: BucketName
    /// Empty, or a key prefix ending with `/`.
    public let prefix: String

    /// Parses `BUCKET` or `BUCKET:/PREFIX` (`BUCKET:PREFIX` too); the prefix's slashes are normalized.
    public init(parsing text: String) throws(MountSourceError) {
        let (bucketPart, prefixPart): (Substring, Substring) = {
            guard let colon = text.firstIndex(of: ":") else { return (Substring(text), "") }
            return (text[..<colon], text[text.index(after: colon)...])
        }()
        let name = String(bucketPart)
        let validCharacters = name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e }
        guard (3...63).contains(name.utf8.count), validCharacters else {
            throw MountSourceError(source: text, reason: "bucket names are 3 to 63 characters of a-z, 0-9, '-' and '.'")
        }
        let components = prefixPart.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.contains(where: { $0 == "." || $0 == ".." }) else {
            throw MountSourceError(source: text, reason: "the prefix may not contain '.' or '..' components")
        }
        bucket = BucketName(name)
        prefix = components.isEmpty ? "" : components.joined(separator: "/") + "/"
    }

    public var description: String { prefix.isEmpty ? bucket.rawValue : "\(bucket.rawValue):/\(prefix)" }
}

/// Parsed `-o` options with their defaults. Options this type does not know are the upload
/// options (`storage_class=`, `acl=`, `meta.NAME=` …, see mount-options/xattrs.md), handed to
/// `UploadMountOptions`.
public struct MountOptions: Sendable {
    /// `url=`: the endpoint; nil starts the embedded obs-local server.
    public var endpoint: String?
    /// `data_dir=`: the embedded server's data directory (nil: the default one); mounts naming
    /// the same directory share one server.
    public var dataDirectory: String?
    /// `passwd_file=`: `AK:SK[:TOKEN]`, refused when group- or world-readable.
    public var passwordFile: String?
    /// `dialect=obs|v2|v4`.
    public var dialect: Dialect = .obs
    /// `region=` (signed into V4 requests).
    public var region = "region"
    /// `addressing=path|virtual`.
    public var virtualHostAddressing = false
    /// `cafile=`: CA bundle for https endpoints.
    public var caFile: String?
    /// `part_size=`: size of the first parts; later parts grow (PartSizeSchedule).
    public var partSize: Int64 = 8 << 20
    /// `parallel=`: part uploads in flight per file.
    public var parallel = 4
    /// `memory_budget=`: bytes of part buffers for the whole mount.
    public var memoryBudget: Int64 = 512 << 20
    /// `retry_timeout=`: how long a failed request is retried (connection refused or reset,
    /// timeouts, 5xx, SlowDown) before the file's upload fails; zero: never retried.
    public var retryTimeout: Duration = .seconds(60)
    /// `stall_timeout=` (whole seconds): an attempt that moves under 1 KiB/s for this long (a
    /// server that accepts and does not answer, a stalled connection) is abandoned, and retried.
    public var stallTimeout: Duration = .seconds(30)
    /// `state_dir=`: where the upload journal lives (nil: the default, see MountSetup+Journal).
    public var stateDirectory: String?
    /// `checksum=crc64|crc32c|md5|none`; nil: the strongest the dialect supports (`integrity`).
    public var checksum: UploadIntegrity?
    /// `log_file=`: where a background (daemonized) mount appends its log.
    public var logFile: String?
    /// `allow_other` / `noallow_other`: whether other users may use the mount (the kernel checks
    /// their permissions, `default_permissions`); nil: yes when mounted by root, as a local
    /// filesystem is, and no otherwise (that needs `user_allow_other` in /etc/fuse.conf).
    public var allowOther: Bool?
    /// `ro`: read-only.
    public var readOnly = false
    /// `allow_over_mount`: mount even where a FUSE filesystem is mounted already.
    public var allowOverMount = false
    /// `uid=`, `gid=`: owner shown for every file (default: the mounting user).
    public var uid: UInt32?
    public var gid: UInt32?
    /// `umask=` (octal); nil: s3fs's modes (`FileSystemConfiguration.umask`).
    public var umask: UInt32?
    /// Upload defaults for every new file (mount-options/xattrs.md).
    public var upload = UploadMountOptions()
    /// `dev`, `nosuid`, `noexec`, `noatime` …: generic mount flags (from mount(8) or fstab),
    /// handed to the kernel mount as written.
    public var kernelFlags: [String] = []
    /// `metrics=`: serve Prometheus metrics there (Status/MetricsEndpoint.swift); nil: off.
    public var metrics: MetricsEndpoint?
    /// `attr_timeout=` (seconds, fractions allowed; 0 turns the cache off): how long names and
    /// attributes seen on the store are trusted.
    public var attributeTimeout: Duration = .seconds(10)
    /// `negative_timeout=` (seconds): how long a missing name is trusted to stay missing. One
    /// second, as `open_revalidate=`: another client's new name is seen as soon as its changes
    /// are (s3fs's `test_external_creation` looks a name up missing, has it stored elsewhere and
    /// looks again a second later; with 5 s it stayed missing).
    public var negativeTimeout: Duration = .seconds(1)
    /// `saved_attr_timeout=` (seconds; 0: off): how old a HEAD answer an earlier mount saved
    /// may be to be used for a name a listing shows unchanged (Namespace/SavedHeadAnswers.swift).
    public var savedAttributeTimeout: Duration = .seconds(900)
    /// `writeback_cache`: writes go through the kernel's page cache, which hands them over in
    /// large batches (mount-options/write-semantics.md, "writeback_cache").
    public var writebackCache = false
    /// `read_ahead=`, `read_memory_budget=` (Read/ReadMountOptions.swift).
    public var read = ReadMountOptions()

    public init() {}

    /// What each part carries to prove its bytes: `checksum=`, else CRC-64 on OBS, CRC-32C on S3.
    public var integrity: UploadIntegrity { checksum ?? .strongest(for: dialect) }

    /// Parses the comma-separated lists given with `-o` (each `-o` may carry several options;
    /// later options override earlier ones; `\,` is a comma inside a value, as in libfuse).
    public init(parsing lists: [String], now: Timestamp = .now()) throws(MountOptionError) {
        self.init()
        for list in lists {
            for option in MountOptionList.split(list) {
                try apply(option, now: now)
            }
        }
        try upload.check(now: now)
        let smallestPart = ProtocolLimits.minimumPartSize(for: dialect)
        guard partSize >= smallestPart else {
            throw MountOptionError(option: "part_size=\(partSize)",
                                   reason: "must be at least \(smallestPart >> 10)K with dialect=\(dialect) (the store refuses smaller parts when completing; dialect=obs allows 100K)")
        }
        try read.check()
        if let checksum, !checksum.isSupported(by: dialect) {
            throw MountOptionError(option: "checksum=\(checksum)", reason: "OBS endpoints know only crc64 (crc32c needs dialect=v2 or v4)")
        }
        guard memoryBudget >= 2 * partSize else {
            throw MountOptionError(option: "memory_budget=\(memoryBudget)", reason: "must be at least twice part_size (\(partSize) bytes)")
        }
    }

    /// A non-negative number of seconds, at most a day, with up to three decimals.
    static func seconds(_ option: String, _ text: String) throws(MountOptionError) -> Duration {
        guard let value = Double(text), value >= 0, value <= 86_400 else {
            throw MountOptionError(option: option, reason: "must be a number of seconds from 0 to 86400")
        }
        return .milliseconds(Int64((value * 1000).rounded()))
    }

    private mutating func apply(_ option: String, now: Timestamp) throws(MountOptionError) {
        let name: String, value: String?
        if let equals = option.firstIndex(of: "=") {
            name = String(option[..<equals])
            value = String(option[option.index(after: equals)...])
        } else {
            name = option
            value = nil
        }
        func required() throws(MountOptionError) -> String {
            guard let value, !value.isEmpty else { throw MountOptionError(option: option, reason: "needs a value (\(name)=…)") }
            return value
        }
        func flag() throws(MountOptionError) {
            guard value == nil else { throw MountOptionError(option: option, reason: "takes no value") }
        }
        switch name {
        case "url":
            let url = try required()
            guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.split(separator: "/").count >= 2 else {
                throw MountOptionError(option: option, reason: "must be an http:// or https:// URL")
            }
            endpoint = url
        case "passwd_file": passwordFile = try required()
        case "data_dir": dataDirectory = try required()
        case "dialect":
            guard let parsed = Dialect(rawValue: try required()) else { throw MountOptionError(option: option, reason: "must be obs, v2 or v4") }
            dialect = parsed
        case "region": region = try required()
        case "addressing":
            switch try required() {
            case "path": virtualHostAddressing = false
            case "virtual": virtualHostAddressing = true
            default: throw MountOptionError(option: option, reason: "must be path or virtual")
            }
        case "cafile": caFile = try required()
        case "part_size":
            let size = try MountOptions.size(try required(), option)
            guard size >= ProtocolLimits.minimumPartSize, size <= ProtocolLimits.maximumPartSize else {
                throw MountOptionError(option: option, reason: "must be between 100K and 5G")
            }
            partSize = size
        case "parallel":
            guard let count = Int(try required()), (1...64).contains(count) else { throw MountOptionError(option: option, reason: "must be a whole number from 1 to 64") }
            parallel = count
        case "memory_budget":
            let size = try MountOptions.size(try required(), option)
            guard size >= 2 * ProtocolLimits.minimumPartSize else { throw MountOptionError(option: option, reason: "must be at least 200K") }
            memoryBudget = size
        case "retry_timeout":
            let timeout = try MountOptions.duration(try required(), option)
            guard timeout <= .seconds(86_400) else { throw MountOptionError(option: option, reason: "must be at most 24h") }
            retryTimeout = timeout
        case "stall_timeout":
            let timeout = try MountOptions.duration(try required(), option)
            guard timeout >= .seconds(1), timeout <= .seconds(3600), timeout.components.attoseconds == 0 else {
                throw MountOptionError(option: option, reason: "must be whole seconds from 1s to 1h")
            }
            stallTimeout = timeout
        case "state_dir":
            let directory = try required()
            guard directory.hasPrefix("/") else { throw MountOptionError(option: option, reason: "must be an absolute path") }
            stateDirectory = directory
        case "checksum":
            guard let parsed = UploadIntegrity(rawValue: try required()) else { throw MountOptionError(option: option, reason: "must be crc64, crc32c, md5 or none") }
            checksum = parsed
        case "log_file": logFile = try required()
        case "metrics": metrics = try MetricsEndpoint(parsing: try required(), option: option)
        case "allow_other", "noallow_other":
            try flag()
            allowOther = name == "allow_other"
        case "ro":
            try flag()
            readOnly = true
        case "rw":
            try flag()
            readOnly = false
        case "allow_over_mount":
            try flag()
            allowOverMount = true
        case "uid":
            guard let id = UInt32(try required()) else { throw MountOptionError(option: option, reason: "must be a numeric user ID") }
            uid = id
        case "gid":
            guard let id = UInt32(try required()) else { throw MountOptionError(option: option, reason: "must be a numeric group ID") }
            gid = id
        case "umask":
            guard let mask = UInt32(try required(), radix: 8), mask <= 0o777 else { throw MountOptionError(option: option, reason: "must be octal, 000 to 777") }
            umask = mask
        case "dev", "nodev", "suid", "nosuid", "exec", "noexec", "sync", "async", "dirsync",
             "atime", "noatime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime":
            try flag()
            kernelFlags.append(name)
        case "defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group", "_netdev", "nofail", "loud", "silent", "comment":
            // For mount(8) and systemd (when and whether to mount), not for the filesystem.
            break
        case _ where name.hasPrefix("x-"):
            // Userspace options (x-systemd.*, x-gvfs-*): meant for other tools.
            break
        case "attr_timeout": attributeTimeout = try Self.seconds(option, try required())
        case "negative_timeout": negativeTimeout = try Self.seconds(option, try required())
        case "saved_attr_timeout": savedAttributeTimeout = try Self.seconds(option, try required())
        case "writeback_cache":
            try flag()
            writebackCache = true
        case "no_writeback_cache":
            try flag()
            writebackCache = false
        default:
            if try read.apply(name: name, value: value, option: option) { return }
            try upload.apply(name: name, value: value, now: now)
        }
    }

    /// `90` or `90s` (seconds), `500ms`, `2m`, `1h`, `7d`.
    public static func duration(_ text: String, _ option: String) throws(MountOptionError) -> Duration {
        let units: [(suffix: String, milliseconds: Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        let unit = units.first { text.hasSuffix($0.suffix) && Int64(text.dropLast($0.suffix.count)) != nil } ?? ("", 1000)
        guard let number = Int64(text.dropLast(unit.suffix.count)), number >= 0, number <= Int64.max / 86_400_000 else {
            throw MountOptionError(option: option, reason: "not a duration (a number with an optional ms, s, m, h or d suffix)")
        }
        return .milliseconds(number * unit.milliseconds)
    }

    /// `123`, `100K`, `8M`, `1G` (binary multiples; a trailing `B`/`iB` is accepted).
    static func size(_ text: String, _ option: String) throws(MountOptionError) -> Int64 {
        var digits = Substring(text.uppercased())
        if digits.hasSuffix("IB") { digits = digits.dropLast(2) } else if digits.hasSuffix("B") { digits = digits.dropLast() }
        var shift: Int64 = 0
        switch digits.last {
        case "K": shift = 10
        case "M": shift = 20
        case "G": shift = 30
        case "T": shift = 40
        default: break
        }
        if shift > 0 { digits = digits.dropLast() }
        guard let number = Int64(digits), number >= 0, number <= (Int64.max >> shift) else {
            throw MountOptionError(option: option, reason: "not a size (a number with an optional K, M, G or T suffix)")
        }
        return number << shift
    }
}
