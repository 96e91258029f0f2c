// Object options: every parameter of InitiateMultipartUpload (and PUT) as a typed value, their
// headers in each dialect, the inverse parse for the server, and the validation rules.

/// A storage class, held by its OBS name. Open to classes this list does not name (a listing
/// from another S3 store may report them); `isKnown` tells the four OBS classes apart.
public struct StorageClass: Hashable, Sendable, CustomStringConvertible {
    /// The OBS name (`STANDARD`, `WARM`, `COLD`, `DEEP_ARCHIVE`) or a foreign one as received.
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }

    public static let standard = StorageClass("STANDARD")
    public static let warm = StorageClass("WARM")
    public static let cold = StorageClass("COLD")
    public static let deepArchive = StorageClass("DEEP_ARCHIVE")

    /// The four classes OBS defines.
    public static let known: [StorageClass] = [.standard, .warm, .cold, .deepArchive]
    public var isKnown: Bool { StorageClass.known.contains(self) }

    /// Renames between OBS and the S3 dialect, as the official SDK does.
    private static let s3Names: [StorageClass: String] = [.warm: "STANDARD_IA", .cold: "GLACIER"]

    /// The class a header or listing names, in either dialect: the S3 names `STANDARD_IA` and
    /// `GLACIER` are `WARM` and `COLD` (OBS never uses them otherwise).
    public init(wireName: String) {
        self = StorageClass.s3Names.first(where: { $0.value == wireName })?.key ?? StorageClass(wireName)
    }

    /// The name `dialect` writes for this class.
    public func wireName(for dialect: Dialect) -> String {
        dialect == .obs ? rawValue : StorageClass.s3Names[self] ?? rawValue
    }

    public var description: String { rawValue }
}
