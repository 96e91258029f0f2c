// Known answers from RFC 1321 (MD5), FIPS 180-2 (SHA-1/SHA-256), RFC 2202 (HMAC-SHA1),
// RFC 4231 (HMAC-SHA256) and RFC 4648 (Base64); streaming against one-shot digests.
import OBSHashing
import Testing

@Suite("Hashing")
struct HashingTests {
    static func bytes(_ byte: UInt8, _ count: Int) -> [UInt8] { [UInt8](repeating: byte, count: count) }

    @Test(arguments: [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        ("12345678901234567890123456789012345678901234567890123456789012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a"),
    ])
    func md5KnownAnswers(message: String, digest: String) {
        #expect(Hash.md5(message.utf8).hexString == digest)
    }

    @Test func shaKnownAnswers() {
        #expect(Hash.sha256("".utf8).hexString == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Hash.sha256("abc".utf8).hexString == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hash.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8).hexString
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Hash.digest(.sha1, "abc".utf8).hexString == "a9993e364706816aba3e25717850c26c9cd0d89d")
    }

    static let hmacCases: [(key: [UInt8], message: [UInt8], sha1: String?, sha256: String?)] = [
        (bytes(0x0b, 20), Array("Hi There".utf8), "b617318655057264e28bc0b6fb378c8ef146be00",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (bytes(0xaa, 20), bytes(0xdd, 50), "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (Array(1...25), bytes(0xcd, 50), "4c9007f4026250c6bc8414f9bf50c86c2d7235da",
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        // RFC 2202 keys larger than a block (80 bytes).
        (bytes(0xaa, 80), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8), "aa4ae5e15272d00e95705637ce8a3b55ed402112", nil),
        (bytes(0xaa, 80), Array("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data".utf8),
         "e8e99d0f45237d786d6bbaa7965c7808bbff1a91", nil),
        // RFC 4231 keys larger than a block (131 bytes).
        (bytes(0xaa, 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8), nil,
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        (bytes(0xaa, 131), Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
         nil, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test(arguments: 0..<hmacCases.count)
    func hmacKnownAnswers(index: Int) {
        let testCase = Self.hmacCases[index]
        if let sha1 = testCase.sha1 { #expect(Hash.hmac(.sha1, key: testCase.key, message: testCase.message).hexString == sha1) }
        if let sha256 = testCase.sha256 { #expect(Hash.hmac(.sha256, key: testCase.key, message: testCase.message).hexString == sha256) }
        // A prepared key gives the same, message after message.
        let sha1Key = HMACKey(.sha1, key: testCase.key), sha256Key = HMACKey(.sha256, key: testCase.key)
        for _ in 0..<2 {
            if let sha1 = testCase.sha1 { #expect(sha1Key.authenticate(testCase.message).hexString == sha1) }
            if let sha256 = testCase.sha256 { #expect(sha256Key.authenticate(testCase.message).hexString == sha256) }
        }
        #expect(HMACKey(.sha1, key: testCase.key).authenticate(testCase.message + [0]) != sha1Key.authenticate(testCase.message))
    }

    @Test(arguments: [DigestAlgorithm.md5, .sha1, .sha256])
    func streamingEqualsOneShot(algorithm: DigestAlgorithm) {
        var generator = SystemRandomNumberGenerator()
        let data = (0..<(1 << 20) + 17).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let digest = StreamingDigest(algorithm)
        var offset = 0
        while offset < data.count {
            let length = min(data.count - offset, Int.random(in: 0...70_000, using: &generator))
            data[offset ..< offset + length].withUnsafeBytes { digest.update($0) }
            offset += length
        }
        let streamed = digest.finalize()
        #expect(streamed == Hash.digest(algorithm, data))
        #expect(streamed.count == algorithm.byteCount)
        // finalize resets: the next digest starts from nothing.
        digest.update("abc".utf8)
        #expect(digest.finalize() == Hash.digest(algorithm, "abc".utf8))
    }

    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func base64KnownAnswers(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test func base64RoundTripsEveryLengthAndByte() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        let all = Array(0...255).map(UInt8.init)
        #expect(Base64.decode(Base64.encode(all)) == all)
    }

    @Test(arguments: ["Zg=", "Zg=a", "Z===", "=Zm9", "Zm=v", "Zm9v!A==", "Zm9v Zg==", "Zg==Zg==", "Zm9\u{e9}"])
    func base64RejectsMalformedInput(text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test func secretsAreNeverPrintedAndKeysAreZeroed() {
        let secret = SecretBytes("hunter2-secret")
        #expect(!"\(secret)".contains("hunter2"))
        #expect(!String(reflecting: secret).contains("hunter2"))
        #expect(secret.withBytes { $0 } == Array("hunter2-secret".utf8))
        var key: [UInt8] = Array("derived key".utf8)
        zeroize(&key)
        #expect(key == [UInt8](repeating: 0, count: 11))
    }
}
