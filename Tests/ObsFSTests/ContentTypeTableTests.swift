import Testing

@testable import ObsFS

@Suite("Content-Type table")
struct ContentTypeTableTests {
    let table = ContentTypeTable.builtIn

    @Test("common extensions", arguments: [
        ("index.html", "text/html"), ("style.css", "text/css"), ("app.js", "text/javascript"), ("data.json", "application/json"),
        ("photo.jpg", "image/jpeg"), ("photo.jpeg", "image/jpeg"), ("icon.png", "image/png"), ("logo.svg", "image/svg+xml"),
        ("clip.mp4", "video/mp4"), ("song.mp3", "audio/mpeg"), ("paper.pdf", "application/pdf"), ("notes.txt", "text/plain"),
        ("table.csv", "text/csv"), ("README.md", "text/markdown"), ("font.woff2", "font/woff2"), ("bundle.zip", "application/zip"),
        ("report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("config.yaml", "application/yaml"), ("module.wasm", "application/wasm"), ("disk.iso", "application/x-iso9660-image"),
    ])
    func common(_ name: String, _ type: String) {
        #expect(table.contentType(forFileName: name) == type)
    }

    @Test("extensions match case-insensitively")
    func caseInsensitive() {
        #expect(table.contentType(forFileName: "PHOTO.JPG") == "image/jpeg")
        #expect(table.contentType(forFileName: "Archive.Tar.GZ") == "application/x-compressed-tar")
    }

    @Test("the longest known dotted suffix wins", arguments: [
        ("backup.tar.gz", "application/x-compressed-tar"), ("backup.2026-11-21.tar.gz", "application/x-compressed-tar"),
        ("backup.gz", "application/gzip"), ("logs.tar.zst", "application/x-zstd-compressed-tar"), ("logs.zst", "application/zstd"),
        ("a.tar.bz2", "application/x-bzip-compressed-tar"), ("a.tar", "application/x-tar"), ("v1.2.3.json", "application/json"),
    ])
    func compound(_ name: String, _ type: String) {
        #expect(table.contentType(forFileName: name) == type)
    }

    @Test("no or unknown extension falls back to application/octet-stream", arguments: [
        "Makefile", ".bashrc", "file.", "data.unknownext", "tar.gz.", "",
    ])
    func fallback(_ name: String) {
        #expect(table.lookup(fileName: name) == nil)
        #expect(table.contentType(forFileName: name) == "application/octet-stream")
    }

    @Test("a hidden file with an extension has that extension")
    func hiddenWithExtension() {
        #expect(table.contentType(forFileName: ".eslintrc.json") == "application/json")
    }

    @Test("a mount's entries override and extend the table, with or without the dot, any case")
    func overrides() {
        var custom = table
        custom.set("text/x-md", forExtension: ".MD")
        custom.set("application/x-thing", forExtension: "thing")
        custom.set("application/x-gtar", forExtension: "tar.gz")
        #expect(custom.contentType(forFileName: "readme.md") == "text/x-md")
        #expect(custom.contentType(forFileName: "a.THING") == "application/x-thing")
        #expect(custom.contentType(forFileName: "a.tar.gz") == "application/x-gtar")
        #expect(table.contentType(forFileName: "readme.md") == "text/markdown")
    }

    @Test("the table covers about 150 extensions, each with a type/subtype")
    func coverage() {
        #expect(table.types.count >= 150)
        #expect(table.types.allSatisfy { ContentTypeTable.isMediaType($0.value) && $0.key == $0.key.lowercased() })
    }
}
