import OBSProtocol

// String literals for typed values, in tests only (library code builds them explicitly).
extension BucketName: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(value) }
}

extension ObjectKey: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(value) }
}

extension UploadID: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self.init(value) }
}
