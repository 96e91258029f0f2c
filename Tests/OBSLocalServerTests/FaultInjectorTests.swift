// The fault rules tests of several keys share one server with: a "refuse" rule that names an
// operation or key opens its window at its first matching request and refuses only that key's
// requests; "kill" asks for a SIGKILL; one rule is removed by ID.
import OBSProtocol
import Testing
@testable import OBSLocalServer

@Suite struct FaultInjectorTests {
    let bucket = BucketName("b")

    func decide(_ faults: FaultInjector, _ operation: String, _ key: String) -> FaultDecision? {
        faults.decide(operation: operation, bucket: bucket, key: ObjectKey(key))
    }

    @Test func aTriggeredRefusalOpensAtItsRequestAndRefusesOnlyItsKey() throws {
        let faults = FaultInjector()
        let id = try #require(faults.add([FaultRule(operation: "UploadPart", key: "a", nth: 2, action: .refuse, seconds: 60)]).first)
        #expect(!faults.refusingConnections)  // not a window for everyone
        #expect(decide(faults, "InitiateMultipartUpload", "a") == nil)
        #expect(decide(faults, "UploadPart", "a") == nil)  // the first part: nth is 2
        #expect(decide(faults, "UploadPart", "a")?.cutAfterBytes == 0)
        // The window is open: the key's other requests are refused, other keys' are not.
        #expect(decide(faults, "CompleteMultipartUpload", "a")?.cutAfterBytes == 0)
        #expect(decide(faults, "AbortMultipartUpload", "a")?.cutAfterBytes == 0)
        #expect(decide(faults, "UploadPart", "b") == nil)
        #expect(faults.remove(id: id))
        #expect(decide(faults, "CompleteMultipartUpload", "a") == nil)
        #expect(!faults.remove(id: id))
    }

    @Test func aTriggeredRefusalEndsWithItsWindow() async throws {
        let faults = FaultInjector()
        _ = faults.add([FaultRule(key: "a", action: .refuse, seconds: 0.2)])
        #expect(decide(faults, "PutObject", "a")?.cutAfterBytes == 0)
        #expect(decide(faults, "HeadObject", "a")?.cutAfterBytes == 0)
        try await Task.sleep(for: .milliseconds(300))
        #expect(decide(faults, "HeadObject", "a") == nil)
    }

    @Test func aRefusalWithoutOperationOrKeyIsForEveryoneAtOnce() {
        let faults = FaultInjector()
        _ = faults.add([FaultRule(action: .refuse, seconds: 60)])
        #expect(faults.refusingConnections)
        faults.clear()
        #expect(!faults.refusingConnections)
    }

    @Test func killFiresAtItsRequest() {
        let faults = FaultInjector()
        _ = faults.add([FaultRule(operation: "CompleteMultipartUpload", key: "a", action: .kill)])
        #expect(decide(faults, "UploadPart", "a") == nil)
        #expect(decide(faults, "CompleteMultipartUpload", "b") == nil)
        #expect(decide(faults, "CompleteMultipartUpload", "a")?.kill == true)
        #expect(decide(faults, "CompleteMultipartUpload", "a") == nil)  // once
    }

    @Test func removingOneRuleKeepsTheOthers() throws {
        let faults = FaultInjector()
        let ids = faults.add([FaultRule(key: "a", times: 0, action: .error, code: "InternalError"),
                              FaultRule(key: "b", times: 0, action: .error, code: "InternalError")])
        #expect(faults.remove(id: ids[0]))
        #expect(decide(faults, "PutObject", "a") == nil)
        #expect(decide(faults, "PutObject", "b")?.error != nil)
        #expect(faults.rules().map(\.id) == [ids[1]])
    }
}
