import OBSProtocol
import Testing

@Suite("Header fields and ETags")
struct HeaderFieldsTests {
    @Test func lookupIgnoresASCIICaseOnly() {
        let fields: HeaderFields = ["Content-Length": "5", "x-obs-meta-Größe": "1", "ETag": "\"e\""]
        #expect(fields["content-length"] == "5")
        #expect(fields["CONTENT-LENGTH"] == "5")
        #expect(fields["Content-Lengt"] == nil)
        #expect(fields["Content-Lengthx"] == nil)
        #expect(fields["X-OBS-META-größe"] == "1")
        #expect(fields["x-obs-meta-GRÖSSE"] == nil) // only ASCII letters fold
        #expect(fields["etag"] == "\"e\"")
    }

    @Test func settingReplacesEveryFieldOfTheNameWhateverItsCase() {
        var fields = HeaderFields()
        fields.add(name: "X-Amz-Date", value: "1")
        fields.add(name: "Host", value: "h")
        fields.add(name: "x-amz-date", value: "2")
        fields["X-AMZ-DATE"] = "3"
        #expect(fields.fields.map(\.name) == ["X-Amz-Date", "Host"])
        #expect(fields.values("x-amz-date") == ["3"])
        fields["host"] = nil
        #expect(fields.count == 1)
        fields["Authorization"] = "a"
        #expect(fields.fields.map(\.name) == ["X-Amz-Date", "Authorization"])
    }

    @Test func prefixAndEqualityIgnoreASCIICase() {
        #expect("X-Obs-Meta-Mode".hasPrefixIgnoringASCIICase("x-obs-meta-"))
        #expect(!"X-Obs-Met".hasPrefixIgnoringASCIICase("x-obs-meta-"))
        #expect(!"x-amz-meta-mode".hasPrefixIgnoringASCIICase("x-obs-meta-"))
        #expect("ÉTAG".equalsIgnoringASCIICase("ÉtAg"))
        #expect(!"ÉTAG".equalsIgnoringASCIICase("étag"))
        #expect(!"[".equalsIgnoringASCIICase("{")) // 0x5B and 0x7B differ by 0x20 but are no letters
    }

    @Test func etagsLoseTheirQuotesOnly() {
        #expect(ETag("\"0123abc\"").value == "0123abc")
        #expect(ETag("&quot;0123abc&quot;").value == "0123abc")
        #expect(ETag("0123abc").value == "0123abc")
        #expect(ETag("\"abc-3").value == "abc-3")
        #expect(ETag("\"").value == "")
        #expect(ETag("\"é\"").value == "é")
        #expect(ETag("\"0123abc\"").quoted == "\"0123abc\"")
    }
}
