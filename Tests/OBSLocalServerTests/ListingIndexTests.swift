// Listings from the sorted key index: every page, prefix and delimiter against a brute-force
// reference (sort by UTF-8 bytes, filter, group), paging through NextMarker until the end.
import OBSProtocol
import Testing

@Suite struct ListingIndexTests {
    static let keys: [String] = {
        var keys = ["a", "a/", "a/b", "a/b/c", "a/b/d", "a/c", "a.txt", "a0", "b", "b/x/y", "c/", "z", "é", "e", "dir/sub/x", "dir/y"]
        keys += (0..<40).map { "dir/many/\($0)" }
        keys += (0..<15).map { "top-\($0)" }
        return keys
    }()

    /// Contents and common prefixes a complete listing holds, in order.
    func reference(prefix: String, delimiter: String?) -> (keys: [String], prefixes: [String]) {
        var keys: [String] = [], prefixes: [String] = []
        for key in Self.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) where key.utf8.starts(with: prefix.utf8) {
            let rest = key.dropFirst(prefix.count)
            if let delimiter, let range = rest.range(of: delimiter) {
                let group = prefix + rest[..<range.upperBound]
                if prefixes.last != group { prefixes.append(group) }
            } else {
                keys.append(key)
            }
        }
        return (keys, prefixes)
    }

    @Test(arguments: [("", nil), ("", "/"), ("a", "/"), ("a/", "/"), ("dir/", "/"), ("dir/many/", nil), ("top-1", nil), ("nothing", "/"), ("", "-")] as [(String, String?)])
    func everyPageMatchesTheReference(prefix: String, delimiter: String?) throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        for key in Self.keys {
            #expect(try client.send("PUT", "/bkt/" + PercentEncoding.encodePath(key), body: Array(key.utf8)).status == 200)
        }
        let expected = reference(prefix: prefix, delimiter: delimiter)
        for pageSize in [1, 3, 7, 1000] {
            var keys: [String] = [], prefixes: [String] = []
            var marker: String?
            var pages = 0
            repeat {
                var query = "prefix=\(PercentEncoding.encode(prefix, keepSlash: false))&max-keys=\(pageSize)"
                if let delimiter { query += "&delimiter=\(PercentEncoding.encode(delimiter, keepSlash: false))" }
                if let marker { query += "&marker=\(PercentEncoding.encode(marker, keepSlash: false))" }
                let page = try client.send("GET", "/bkt", query: query)
                #expect(page.status == 200, "\(page.text)")
                let pageKeys = page.elements("Key")
                let pagePrefixes = page.elements("CommonPrefixes").map { $0.replacingOccurrences(of: "<Prefix>", with: "").replacingOccurrences(of: "</Prefix>", with: "") }
                #expect(pageKeys.count + pagePrefixes.count <= pageSize)
                keys += pageKeys
                prefixes += pagePrefixes
                marker = page.element("IsTruncated") == "true" ? page.element("NextMarker") : nil
                pages += 1
            } while marker != nil && pages < 200
            #expect(keys == expected.keys, "page size \(pageSize)")
            #expect(prefixes == expected.prefixes, "page size \(pageSize)")
        }
    }

    @Test func deletedAndReplacedKeysLeaveTheIndexConsistent() throws {
        let server = try TestServer(memory: true)
        defer { server.stop() }
        let client = server.client()
        for key in ["k1", "k2", "k3", "k4"] { _ = try client.send("PUT", "/bkt/\(key)", body: [1]) }
        _ = try client.send("DELETE", "/bkt/k2")
        _ = try client.send("PUT", "/bkt/k3", body: [2])  // replaced: listed once
        _ = try client.send("PUT", "/bkt/k0", body: [3])
        #expect(try client.send("GET", "/bkt").elements("Key") == ["k0", "k1", "k3", "k4"])
    }
}
