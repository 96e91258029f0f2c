import OBSProtocol
import Testing

@Suite("XML reader and writer")
struct XMLReaderWriterTests {
    @Test("reads declaration, comments, processing instructions, CDATA, entities and references")
    func readsEverySupportedConstruct() throws {
        let text = """
        \u{FEFF}<?xml version="1.0" encoding="UTF-8"?>
        <!-- a comment -->
        <?app some instruction?>
        <r:Root xmlns:r="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type='Group' plain="a &amp; b &#x41;">
          <Key> spaced &lt;&gt;&amp;&apos;&quot; &#65;&#x1F389; </Key>
          <!-- inside --><?pi x?>
          <Data><![CDATA[<not> & markup]]>tail</Data>
          <Empty/>
          <Empty></Empty>
          <Lines>a\r\nb\rc</Lines>
        </r:Root>
        <!-- trailing comment -->
        """
        let root = try XML.parse(text)
        #expect(root.name == "r:Root")
        #expect(root.localName == "Root")
        #expect(root.attribute("type") == "Group")
        #expect(root.attribute("xsi") == "http://www.w3.org/2001/XMLSchema-instance")
        #expect(root.attribute("plain") == "a & b A")
        #expect(root.childText("Key") == " spaced <>&'\" A🎉 ")
        #expect(root.childText("Data") == "<not> & markuptail")
        #expect(root.children("Empty").count == 2)
        #expect(root.children("Empty").allSatisfy { $0.text.isEmpty && $0.children.isEmpty })
        #expect(root.childText("Lines") == "a\nb\nc")
        #expect(root.children.map(\.name) == ["Key", "Data", "Empty", "Empty", "Lines"])
    }

    @Test("children are found by local name, with or without a prefix, and by nothing longer or shorter")
    func childrenByLocalName() {
        let names = ["xKey", "Key2", "ey", "s3:Key", "a:b:Key", "Key"]
        let element = XML.Element("Root", children: names.map { XML.Element($0, text: $0) })
        #expect(element.child("Key")?.text == "s3:Key")
        #expect(element.children("Key").map(\.text) == ["s3:Key", "a:b:Key", "Key"])
        #expect(element.child("ey")?.text == "ey")
        #expect(element.child("Key2")?.text == "Key2")
        #expect(element.child("K") == nil && element.child("xKey2") == nil)
    }

    @Test("attribute values: literal whitespace normalised, references kept")
    func attributeNormalisation() throws {
        let root = try XML.parse("<a v=\"x\ty\nz&#9;&#xA;&#xD;\"/>")
        #expect(root.attribute("v") == "x y z\t\n\r")
    }

    static let malformed: [String] = [
        "", "   ", "<", "<a", "<a>", "<a/", "<a></b>", "<a></a", "</a>", "<a><b></a></b>",
        "<a>&unknown;</a>", "<a>&amp</a>", "<a>&#;</a>", "<a>&#x;</a>", "<a>&#xD800;</a>", "<a>&#x110000;</a>",
        "<a>&#99999999999999;</a>", "<a>&#xZZ;</a>", "<a b=c/>", "<a b='1' b='2'/>", "<a b='1'c='2'/>", "<a b/>",
        "<a b='<'/>", "<a b='x/>", "<a>x</a>trailing", "text<a/>", "<a/><b/>", "<!DOCTYPE a><a/>",
        "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>", "<a><!-- unterminated</a>", "<a><![CDATA[x</a>", "<a><!ENTITY x></a>",
        "<a>\u{1}</a>", "<a>\u{0}</a>", "<a b='\u{2}'/>", "<?xml version='1.0'", "<?xml version='1.0'?>", "<1a/>", "< a/>",
        "<a>]]></a><", "<a><?", "<a><![CDATA[", "<a>&#x41</a>",
    ]

    @Test("malformed documents are errors", arguments: malformed)
    func malformedIsAnError(_ text: String) {
        #expect(throws: XML.ParseError.self) { try XML.parse(text) }
    }

    @Test("invalid UTF-8 in text or attributes is an error")
    func invalidUTF8() {
        #expect(throws: XML.ParseError.self) { try XML.parse(Array("<a>".utf8) + [0xC3, 0x28] + Array("</a>".utf8)) }
        #expect(throws: XML.ParseError.self) { try XML.parse(Array("<a v='".utf8) + [0xFF] + Array("'/>".utf8)) }
    }

    @Test("the depth limit holds, and very deep input is refused without recursion")
    func depthLimit() throws {
        func nested(_ depth: Int) -> String { String(repeating: "<a>", count: depth) + String(repeating: "</a>", count: depth) }
        _ = try XML.parse(nested(XML.defaultDepthLimit))
        #expect(throws: XML.ParseError.self) { try XML.parse(nested(XML.defaultDepthLimit + 1)) }
        #expect(throws: XML.ParseError.self) { try XML.parse(nested(200_000)) }
        #expect(throws: XML.ParseError.self) { try XML.parse(nested(5), depthLimit: 4) }
    }

    @Test("every proper prefix of a document is an error")
    func truncation() throws {
        let bytes = Array("<?xml version=\"1.0\"?><a x=\"1\"><b>t&amp;</b><!--c--><c><![CDATA[d]]></c><e/></a>".utf8)
        _ = try XML.parse(bytes)
        for length in 0..<bytes.count {
            #expect(throws: XML.ParseError.self, "prefix of \(length) bytes") { try XML.parse(Array(bytes[..<length])) }
        }
    }

    @Test("random corruption never crashes or hangs the reader")
    func corruption() throws {
        let original = XML.Element("Root", attributes: [XML.Attribute("a", "v&\"")], [
            XML.Element("Key", text: "k <&> 🎉\u{1}"), XML.Element("Nested", [XML.Element("Leaf", text: "x")]),
        ]).serialized(namespace: "urn:n")
        var generator = SplitMix64(seed: 7)
        let markup = Array("<>&;/\"'!?[]-x".utf8)
        var failures = 0
        for _ in 0..<3000 {
            var bytes = original
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                let index = Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 3 {
                case 0: bytes[index] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes.remove(at: index)
                default: bytes.insert(markup[Int(generator.next() % UInt64(markup.count))], at: index)
                }
            }
            do { _ = try XML.parse(bytes) } catch { failures += 1 }
        }
        #expect(failures > 1000)
    }

    @Test("the writer escapes text and attributes exactly")
    func writerEscapes() {
        let element = XML.Element("K", text: "a<b>&c\"d'e\tf\ng\rh\u{1}i\u{1F}\u{7F}é\u{FFFE}",
                                  attributes: [XML.Attribute("v", "q\"<&>\t\n\r\u{2}")])
        let written = String(decoding: element.serialized(namespace: "urn:n"), as: UTF8.self)
        #expect(written == "<?xml version=\"1.0\" encoding=\"UTF-8\"?><K xmlns=\"urn:n\" v=\"q&quot;&lt;&amp;&gt;&#x9;&#xA;&#xD;&#x2;\">"
            + "a&lt;b&gt;&amp;c\"d'e\tf\ng&#xD;h&#x1;i&#x1F;\u{7F}é&#xFFFE;</K>")
        #expect(String(decoding: XML.Element("E").serialized(), as: UTF8.self) == "<?xml version=\"1.0\" encoding=\"UTF-8\"?><E/>")
    }

    @Test("written documents read back identically, control characters included")
    func writerReaderRoundTrip() throws {
        var every = ""
        for value in 1..<0x80 { every.unicodeScalars.append(Unicode.Scalar(UInt8(value))) }
        every += "\u{0}é🎉\u{FFFD}\u{FFFF}\u{FFFE}\u{FF01}\u{F000}\r\n"
        let element = XML.Element("Root", attributes: [XML.Attribute("attr", every), XML.Attribute("xmlns:p", "urn:p")], [
            XML.Element("p:Leaf", text: every),
            XML.Element("Parent", [XML.Element("Leaf", text: " ")]),
        ])
        #expect(try XML.parse(element.serialized()) == element)
    }
}

/// A small deterministic generator for corruption tests.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_10EB
        return z ^ (z >> 31)
    }
}
