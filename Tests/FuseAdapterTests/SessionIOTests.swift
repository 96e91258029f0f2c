// The change SessionIO makes to the answer to the kernel's INIT: the capabilities libfuse 3.14
// cannot ask for are added when, and only when, the kernel offers them.
import CFuse3
import Glibc
import Testing
@testable import FuseAdapter

@Suite(.serialized) struct SessionIOTests {
    static let killPrivV2 = UInt32(FUSE_HANDLE_KILLPRIV_V2)
    static let extended = UInt32(FUSE_INIT_EXT)
    static let allowMmapInFlags2: UInt32 = 1 << 4  // FUSE_DIRECT_IO_ALLOW_MMAP, bit 36

    /// The INIT request as the kernel writes it: header, then `fuse_init_in`.
    func initRequest(unique: UInt64, flags: UInt32, flags2: UInt32) -> [UInt8] {
        var header = fuse_in_header()
        header.opcode = FUSE_INIT.rawValue
        header.unique = unique
        var body = fuse_init_in()
        body.major = 7
        body.minor = 45
        body.flags = flags
        body.flags2 = flags2
        header.len = UInt32(MemoryLayout<fuse_in_header>.size + MemoryLayout<fuse_init_in>.size)
        return withUnsafeBytes(of: header) { Array($0) } + withUnsafeBytes(of: body) { Array($0) }
    }

    /// libfuse's answer (`flags`, `flags2`) to request `unique`, after SessionIO amended it.
    func amendedAnswer(unique: UInt64, flags: UInt32, flags2: UInt32 = 0, error: Int32 = 0) -> (flags: UInt32, flags2: UInt32) {
        var header = fuse_out_header(len: 0, error: error, unique: unique)
        var body = fuse_init_out()
        body.flags = flags
        body.flags2 = flags2
        return withUnsafeMutableBytes(of: &header) { headerBytes in
            withUnsafeMutableBytes(of: &body) { bodyBytes in
                var vectors = [iovec(iov_base: headerBytes.baseAddress, iov_len: headerBytes.count),
                               iovec(iov_base: bodyBytes.baseAddress, iov_len: bodyBytes.count)]
                vectors.withUnsafeMutableBufferPointer { SessionIO.amendAnswer($0.baseAddress!, count: 2) }
                let amended = bodyBytes.load(as: fuse_init_out.self)
                return (amended.flags, amended.flags2)
            }
        }
    }

    func note(_ request: [UInt8]) { request.withUnsafeBytes { SessionIO.noteRequest($0.baseAddress!, count: $0.count) } }

    @Test func offeredCapabilitiesAreAddedToTheAnswer() {
        note(initRequest(unique: 2, flags: Self.killPrivV2 | Self.extended | 1, flags2: Self.allowMmapInFlags2 | 1))
        let answer = amendedAnswer(unique: 2, flags: Self.extended | 8, flags2: 2)
        #expect(answer.flags == Self.extended | 8 | Self.killPrivV2)  // nothing else the kernel offered
        #expect(answer.flags2 == 2 | Self.allowMmapInFlags2)
        // Once: a later answer with the same ID is not INIT's.
        #expect(amendedAnswer(unique: 2, flags: Self.extended).flags == Self.extended)
    }

    @Test func nothingIsAddedThatTheKernelDidNotOffer() {
        note(initRequest(unique: 4, flags: Self.extended, flags2: 0))
        #expect(amendedAnswer(unique: 4, flags: Self.extended) == (Self.extended, 0))
    }

    @Test func onlyTheAnswerToInitIsChanged() {
        note(initRequest(unique: 6, flags: Self.killPrivV2 | Self.extended, flags2: Self.allowMmapInFlags2))
        #expect(amendedAnswer(unique: 8, flags: Self.extended) == (Self.extended, 0))  // another request's answer
        #expect(amendedAnswer(unique: 6, flags: 0, error: -EPROTO) == (0, 0))  // a refused INIT
        // Without FUSE_INIT_EXT in the answer the kernel reads no flags2: only flags change.
        note(initRequest(unique: 10, flags: Self.killPrivV2 | Self.extended, flags2: Self.allowMmapInFlags2))
        #expect(amendedAnswer(unique: 10, flags: 0) == (Self.killPrivV2, 0))
    }
}
