// Content-Type of a new object from its file name: a compact built-in table of common
// extensions (types as IANA registers them, or the freedesktop shared-mime-info name where IANA
// has none), extended per mount with `content_type.EXT=TYPE`.

/// Extension → media type, matched case-insensitively on the longest dotted suffix
/// (`a.tar.gz` tries `tar.gz` before `gz`); `application/octet-stream` for anything else.
public struct ContentTypeTable: Sendable, Equatable {
    /// Lower-case extension without the leading dot (`tar.gz`) → type.
    private(set) var types: [String: String]

    /// The type of a name with no known extension.
    public static let fallback = "application/octet-stream"

    /// The built-in table.
    public static let builtIn = ContentTypeTable(types: [
        // text
        "txt": "text/plain", "text": "text/plain", "log": "text/plain", "conf": "text/plain", "ini": "text/plain",
        "md": "text/markdown", "markdown": "text/markdown", "rst": "text/x-rst", "csv": "text/csv",
        "tsv": "text/tab-separated-values", "html": "text/html", "htm": "text/html", "xhtml": "application/xhtml+xml",
        "css": "text/css", "js": "text/javascript", "mjs": "text/javascript", "cjs": "text/javascript",
        "xml": "application/xml", "xsl": "application/xslt+xml", "xslt": "application/xslt+xml", "dtd": "application/xml-dtd",
        "ics": "text/calendar", "vcf": "text/vcard", "vtt": "text/vtt", "srt": "application/x-subrip",
        "rtf": "application/rtf", "tex": "application/x-tex", "diff": "text/x-diff", "patch": "text/x-diff",
        // source and data
        "json": "application/json", "jsonld": "application/ld+json", "ndjson": "application/x-ndjson",
        "map": "application/json", "geojson": "application/geo+json", "yaml": "application/yaml", "yml": "application/yaml",
        "toml": "application/toml", "sql": "application/sql", "c": "text/x-c", "h": "text/x-c", "cc": "text/x-c++",
        "cpp": "text/x-c++", "hpp": "text/x-c++", "java": "text/x-java", "py": "text/x-python", "rb": "text/x-ruby",
        "go": "text/x-go", "rs": "text/x-rust", "swift": "text/x-swift", "sh": "application/x-sh",
        "ts": "application/typescript", "php": "application/x-httpd-php", "pl": "text/x-perl", "lua": "text/x-lua",
        "wasm": "application/wasm", "proto": "text/plain", "parquet": "application/vnd.apache.parquet",
        "avro": "application/avro", "pem": "application/x-pem-file", "crt": "application/x-x509-ca-cert",
        "der": "application/x-x509-ca-cert",
        // images
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "jpe": "image/jpeg", "gif": "image/gif",
        "webp": "image/webp", "avif": "image/avif", "heic": "image/heic", "heif": "image/heif", "bmp": "image/bmp",
        "ico": "image/vnd.microsoft.icon", "svg": "image/svg+xml", "svgz": "image/svg+xml", "tif": "image/tiff",
        "tiff": "image/tiff", "psd": "image/vnd.adobe.photoshop", "jxl": "image/jxl", "dng": "image/x-adobe-dng",
        // audio
        "mp3": "audio/mpeg", "m4a": "audio/mp4", "aac": "audio/aac", "ogg": "audio/ogg", "oga": "audio/ogg",
        "opus": "audio/opus", "flac": "audio/flac", "wav": "audio/wav", "weba": "audio/webm", "mid": "audio/midi",
        "midi": "audio/midi", "aif": "audio/aiff", "aiff": "audio/aiff",
        // video
        "mp4": "video/mp4", "m4v": "video/mp4", "mov": "video/quicktime", "webm": "video/webm", "mkv": "video/x-matroska",
        "avi": "video/x-msvideo", "wmv": "video/x-ms-wmv", "flv": "video/x-flv", "mpeg": "video/mpeg", "mpg": "video/mpeg",
        "ogv": "video/ogg", "3gp": "video/3gpp", "m3u8": "application/vnd.apple.mpegurl", "mts": "video/mp2t",
        // fonts
        "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf", "eot": "application/vnd.ms-fontobject",
        // documents
        "pdf": "application/pdf", "epub": "application/epub+zip", "ps": "application/postscript", "eps": "application/postscript",
        "doc": "application/msword", "dot": "application/msword",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls": "application/vnd.ms-excel",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt": "application/vnd.ms-powerpoint",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
        "odp": "application/vnd.oasis.opendocument.presentation", "pages": "application/vnd.apple.pages",
        "key": "application/vnd.apple.keynote", "numbers": "application/vnd.apple.numbers",
        // archives and compressed files (no Content-Encoding is inferred: a .gz is stored as gzip bytes)
        "zip": "application/zip", "gz": "application/gzip", "tgz": "application/x-compressed-tar",
        "tar": "application/x-tar", "tar.gz": "application/x-compressed-tar",
        "tar.bz2": "application/x-bzip-compressed-tar", "tbz2": "application/x-bzip-compressed-tar",
        "tar.xz": "application/x-xz-compressed-tar", "txz": "application/x-xz-compressed-tar",
        "tar.zst": "application/x-zstd-compressed-tar", "tar.lz4": "application/x-lz4-compressed-tar",
        "bz2": "application/x-bzip2", "xz": "application/x-xz", "zst": "application/zstd", "lz4": "application/x-lz4",
        "7z": "application/x-7z-compressed", "rar": "application/vnd.rar", "cab": "application/vnd.ms-cab-compressed",
        "jar": "application/java-archive", "war": "application/java-archive", "apk": "application/vnd.android.package-archive",
        // packages, disk images, binaries
        "deb": "application/vnd.debian.binary-package", "rpm": "application/x-rpm", "iso": "application/x-iso9660-image",
        "dmg": "application/x-apple-diskimage", "img": "application/octet-stream", "qcow2": "application/x-qemu-disk",
        "exe": "application/vnd.microsoft.portable-executable", "msi": "application/x-msi", "dll": "application/x-msdownload",
        "bin": "application/octet-stream", "so": "application/octet-stream", "class": "application/java-vm",
        "sqlite": "application/vnd.sqlite3", "db": "application/vnd.sqlite3", "swf": "application/x-shockwave-flash",
        "torrent": "application/x-bittorrent", "ipynb": "application/x-ipynb+json",
        // web
        "rss": "application/rss+xml", "atom": "application/atom+xml", "webmanifest": "application/manifest+json",
        "appcache": "text/cache-manifest", "gpx": "application/gpx+xml", "kml": "application/vnd.google-earth.kml+xml",
        "kmz": "application/vnd.google-earth.kmz",
    ])

    private init(types: [String: String]) { self.types = types }

    /// Maps `fileExtension` (with or without a leading dot, any case) to `type`, replacing a built-in entry.
    public mutating func set(_ type: String, forExtension fileExtension: String) {
        types[ContentTypeTable.normalize(fileExtension)] = type
    }

    /// The type for `fileName`, or nil when no suffix is known. A name starting with a dot and
    /// having no other dot (`.bashrc`) has no extension.
    public func lookup(fileName: String) -> String? {
        let lower = fileName.lowercasedASCII
        var rest = Substring(lower.drop { $0 == "." })
        while let dot = rest.firstIndex(of: ".") {
            rest = rest[rest.index(after: dot)...]
            if let type = types[String(rest)] { return type }
        }
        return nil
    }

    /// The type for `fileName`, `application/octet-stream` when unknown.
    public func contentType(forFileName fileName: String) -> String { lookup(fileName: fileName) ?? ContentTypeTable.fallback }

    /// Whether `text` looks like `type/subtype` (printable ASCII, one slash, no spaces).
    static func isMediaType(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty }
            && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }

    private static func normalize(_ fileExtension: String) -> String {
        String(fileExtension.lowercasedASCII.drop { $0 == "." })
    }
}
