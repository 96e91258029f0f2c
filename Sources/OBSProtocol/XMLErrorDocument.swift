// The `<Error>` document: `ServiceError` from a reply body (client) and to one (server).

extension ObsErrorCode {
    /// The code given to an error reply whose body is not a readable `<Error>` document.
    public static let unknownError: ObsErrorCode = "UnknownError"
}

extension ServiceError {
    /// Longest piece of an unreadable body quoted in the message.
    static let quotedBodyLimit = 200

    /// Reads an error reply. Never fails: an empty, truncated, HTML or otherwise unreadable
    /// body gives `UnknownError` with the status and the start of the body in the message.
    /// `requestIDHeader` (`x-obs-request-id` / `x-amz-request-id`) stands in when the body has
    /// no `<RequestId>`.
    public init(status: Int, body: UnsafeRawBufferPointer, requestIDHeader: String? = nil) {
        if let root = try? XML.parse(body), root.localName == "Error", let code = root.optionalText("Code") {
            self.init(status: status, code: ObsErrorCode(code), message: root.childText("Message") ?? "",
                      requestID: root.optionalText("RequestId") ?? requestIDHeader, hostID: root.optionalText("HostId"),
                      resource: root.optionalText("Resource"))
        } else {
            let quoted = String(decoding: body.prefix(ServiceError.quotedBodyLimit), as: UTF8.self)
                .map { $0.isASCII && ($0.asciiValue! < 0x20 || $0.asciiValue! == 0x7F) ? " " : $0 }
            let message = body.isEmpty ? "HTTP \(status) with an empty body" : "HTTP \(status) with an unreadable error body: \(String(quoted))"
            self.init(status: status, code: .unknownError, message: message, requestID: requestIDHeader)
        }
    }

    /// Reads an error reply; see `init(status:body:requestIDHeader:)`.
    public init(status: Int, body: [UInt8], requestIDHeader: String? = nil) {
        self = body.withUnsafeBytes { ServiceError(status: status, body: $0, requestIDHeader: requestIDHeader) }
    }

    /// The `<Error>` document the server answers with.
    public var xml: XML.Element {
        XML.Element("Error", [.leaf("Code", code.rawValue), .leaf("Message", message)]
            + .leaf("Resource", resource) + .leaf("RequestId", requestID) + .leaf("HostId", hostID))
    }

    /// The reply body: declaration and `<Error>` (error documents carry no namespace).
    public var serializedDocument: [UInt8] { xml.serialized() }
}
