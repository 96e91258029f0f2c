import Glibc
import OBSProtocol
import Testing

@testable import ObsFS

@Suite("When attribute changes take effect")
struct ObjectAttributeTimingTests {
    typealias F = AttributeFixtures

    /// Every settable attribute with a valid value, and whether only initiation can set it.
    static let changes: [(String, String, ObjectUpdateRequest?)] = [
        ("user.obs.acl", "public-read", .putACL),
        ("user.obs.grant-read", "id=d1", .putACL),
        ("user.obs.grant-read-acp", "id=d1", .putACL),
        ("user.obs.grant-write-acp", "id=d1", .putACL),
        ("user.obs.grant-full-control", "id=d1", .putACL),
        ("user.obs.storage-class", "COLD", .changeStorageClass),
        ("user.obs.meta.k", "v", .replaceMetadata),
        ("user.obs.content-type", "text/plain", .replaceMetadata),
        ("user.obs.content-encoding", "gzip", .replaceMetadata),
        ("user.obs.website-redirect", "/elsewhere", .replaceMetadata),
        ("user.obs.tagging", "a=1", .putTagging),
        ("user.obs.sse", "obs", nil),
        ("user.obs.sse-kms-key-id", "k", nil),
        ("user.obs.sse-kms-bucket-key", "true", nil),
        ("user.obs.expires", "30", nil),
        ("user.obs.persistent.x-p", "v", nil),
        ("user.obs.object-lock-mode", "COMPLIANCE", nil),
        ("user.obs.object-lock-retain-until", F.future, nil),
        ("user.obs.encoding-type", "none", nil),
    ]

    @Test("before the first part every change re-initiates; after, settable ones wait for completion and initiation-only ones are EBUSY; on a closed object they apply at once or are EPERM", arguments: changes)
    func stages(_ text: String, _ value: String, _ request: ObjectUpdateRequest?) throws {
        let name = try F.name(text)
        #expect(name.updateRequest == request)
        let current = ObjectOptions()
        var proposed = current
        try F.set(text, value, on: &proposed)
        #expect(try name.update(at: .beforeFirstPart, from: current, to: proposed) == .reinitiate)
        if let request {
            #expect(try name.update(at: .partsSent, from: current, to: proposed) == .afterCompletion(request))
            #expect(try name.update(at: .complete, from: current, to: proposed) == .immediately(request))
        } else {
            let late = F.failure { _ = try name.update(at: .partsSent, from: current, to: proposed) }
            #expect(late?.errno == EBUSY)
            #expect(late?.attribute == text)
            #expect(late?.message.contains("already sent") == true)
            let closed = F.failure { _ = try name.update(at: .complete, from: current, to: proposed) }
            #expect(closed?.errno == EPERM)
            #expect(closed?.attribute == text)
        }
    }

    @Test("re-applying the value a file already has changes nothing at any stage (cp -a, rsync -X)")
    func unchanged() throws {
        var options = ObjectOptions()
        try F.set("user.obs.expires", "30", on: &options)
        var again = options
        try F.set("user.obs.expires", "30", on: &again)
        for stage in [UploadStage.beforeFirstPart, .partsSent, .complete] {
            #expect(try F.name("user.obs.expires").update(at: stage, from: options, to: again) == .unchanged)
        }
    }

    @Test("removing metadata of a closed object replaces the metadata at once")
    func removal() throws {
        var options = ObjectOptions()
        try F.set("user.obs.meta.k", "v", on: &options)
        var proposed = options
        try F.name("user.obs.meta.k").remove(from: &proposed)
        #expect(try F.name("user.obs.meta.k").update(at: .complete, from: options, to: proposed) == .immediately(.replaceMetadata))
    }
}
