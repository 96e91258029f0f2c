// CRC-64/ECMA and CRC-32C over ISA-L: the standard check values ("123456789"), the official OBS
// SDK's values and part combines on pseudo-random data (Fixtures/crc-sdk.txt, made by
// scripts/gen-crc-vectors.py), running updates against one-shot values, combines of any split.
import Foundation
import OBSHashing
import Testing

@Suite("CRC")
struct CRCTests {
    /// The bytes scripts/gen-crc-vectors.py makes for a seed (a 31-bit LCG, bits 16..23).
    static func pseudoRandom(seed: UInt64, length: Int) -> [UInt8] {
        var state = seed
        return (0..<length).map { _ in
            state = (state &* 1_103_515_245 &+ 12345) & 0x7FFF_FFFF
            return UInt8(truncatingIfNeeded: state >> 16)
        }
    }

    static func algorithm(_ name: Substring) -> CRCAlgorithm {
        switch name {
        case "crc64ecma": .crc64ecma
        case "crc32c": .crc32c
        default: fatalError("unknown algorithm \(name) in the fixture")
        }
    }

    static let fixture: [[Substring]] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/crc-sdk.txt")
        let text = try! String(contentsOf: url, encoding: .utf8)
        return text.split(separator: "\n").map { $0.split(separator: " ") }
    }()

    @Test func checkValues() {
        #expect(CRC(.crc64ecma, of: "123456789".utf8).value == 0x995D_C9BB_DF19_39FA)
        #expect(CRC(.crc32c, of: "123456789".utf8).value == 0xE306_9283)
        #expect(CRC(.crc64ecma, of: [UInt8]()).value == 0)
        #expect(CRC(.crc32c, of: [UInt8]()).value == 0)
    }

    @Test func wholeBuffersMatchTheSDK() {
        let vectors = Self.fixture.filter { $0[0] == "whole" }
        #expect(vectors.count >= 16)
        for vector in vectors {
            let data = Self.pseudoRandom(seed: UInt64(vector[2])!, length: Int(vector[3])!)
            #expect(CRC(Self.algorithm(vector[1]), of: data).value == UInt64(vector[4])!, "\(vector.joined(separator: " "))")
        }
    }

    @Test func partsAndTheirCombineMatchTheSDK() {
        let vectors = Self.fixture.filter { $0[0] == "parts" }
        #expect(vectors.count >= 8)
        for vector in vectors {
            let algorithm = Self.algorithm(vector[1])
            let data = Self.pseudoRandom(seed: UInt64(vector[2])!, length: Int(vector[3])!)
            let sizes = vector[4].split(separator: ",").map { Int($0)! }
            let expected = vector[5].split(separator: ",").map { UInt64($0)! }
            var object = CRC(algorithm)
            var offset = 0
            for (size, value) in zip(sizes, expected) {
                let part = CRC(algorithm, of: data[offset..<(offset + size)])
                #expect(part.value == value)
                object = object.combined(with: part, length: Int64(size))
                offset += size
            }
            #expect(object.value == UInt64(vector[6])!, "\(vector.joined(separator: " "))")
        }
    }

    @Test(arguments: CRCAlgorithm.allCases)
    func updatesAndCombinesAgreeWithOnePass(algorithm: CRCAlgorithm) {
        let data = Self.pseudoRandom(seed: 99, length: 300_001)
        let whole = CRC(algorithm, of: data)
        for cut in [0, 1, 8, 4095, 150_000, 299_999, 300_001] {
            var running = CRC(algorithm, of: data[..<cut])
            data[cut...].withUnsafeBytes { running.update($0) }
            #expect(running == whole)
            let joined = CRC(algorithm, of: data[..<cut]).combined(with: CRC(algorithm, of: data[cut...]), length: Int64(data.count - cut))
            #expect(joined == whole)
        }
        // One changed bit changes the value.
        var flipped = data
        flipped[123_456] ^= 0x10
        #expect(CRC(algorithm, of: flipped) != whole)
    }
}
