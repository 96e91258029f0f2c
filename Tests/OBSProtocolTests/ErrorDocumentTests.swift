import OBSProtocol
import Testing

@Suite("Error documents")
struct ErrorDocumentTests {
    @Test("a well-formed error document gives every field")
    func wellFormed() {
        let body = """
        <?xml version="1.0" encoding="UTF-8"?>
        <Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message>
        <Resource>/bkt/k</Resource><RequestId>0000018A</RequestId><HostId>host/id=</HostId></Error>
        """
        let error = ServiceError(status: 404, body: Array(body.utf8), requestIDHeader: "from-header")
        #expect(error == ServiceError(status: 404, code: .noSuchUpload, message: "The specified upload does not exist.",
                                      requestID: "0000018A", hostID: "host/id=", resource: "/bkt/k"))
    }

    @Test("namespaced errors without a RequestId take the header's")
    func namespacedAndHeaderID() {
        let body = #"<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"#
        let error = ServiceError(status: 503, body: Array(body.utf8), requestIDHeader: "R1")
        #expect(error.code == .slowDown && error.requestID == "R1" && error.isRetryable && error.resource == nil)
    }

    @Test("unreadable bodies give UnknownError with the status", arguments: [
        "", "<html><body><h1>502 Bad Gateway</h1></body></html>", "<Error><Code>NoSuchKey</Code><Message>trunc",
        "<Error><Message>no code</Message></Error>", "not xml at all\u{1}\n", "<Other><Code>X</Code></Other>",
    ])
    func unreadable(_ body: String) {
        let error = ServiceError(status: 502, body: Array(body.utf8), requestIDHeader: "R2")
        #expect(error.status == 502)
        #expect(error.code == .unknownError)
        #expect(error.requestID == "R2")
        #expect(error.message.contains("502"))
        #expect(!error.message.unicodeScalars.contains { $0.value < 0x20 })
    }

    @Test("a huge unreadable body is quoted only in part")
    func hugeBody() {
        let error = ServiceError(status: 500, body: [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20))
        #expect(error.message.count < 300)
    }

    @Test("the server's error document reads back as the same error")
    func roundTrip() {
        let original = ServiceError(status: 400, code: .malformedXML, message: "The XML you provided was not well-formed <&>",
                                    requestID: "REQ", hostID: "HOST", resource: "/b/k \u{1}")
        #expect(ServiceError(status: 400, body: original.serializedDocument) == original)
        let minimal = ServiceError(status: 403, code: .accessDenied, message: "")
        #expect(ServiceError(status: 403, body: minimal.serializedDocument) == minimal)
    }
}
