// Retries bounded by time (the mount's retry_timeout=): an outage of any number of attempts is
// ridden out while the time lasts, and a persistent failure ends once it is used up.
import CurlTransport
@testable import OBSClient
import OBSProtocol
import Testing

@Suite("Retries bounded by time")
struct RetryTimeLimitTests {
    let bucket = BucketName("bkt")
    let key = ObjectKey("k")

    func client(_ answers: [ScriptedTransport.Answer], retry: RetryPolicy) -> (OBSClient, ScriptedTransport) {
        var configuration = OBSClientConfiguration.scripted()
        configuration.retry = retry
        let transport = ScriptedTransport(answers)
        return (OBSClient(configuration: configuration, transport: transport), transport)
    }

    @Test func anOutageOfManyAttemptsIsRiddenOutWithinTheTime() async throws {
        let refusals = Array(repeating: Reply.transportFailure(code: 7, "Connection refused"), count: 40)
        let (client, transport) = client(refusals + [Reply.status(204)],
                                         retry: RetryPolicy(maxAttempts: .max, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2),
                                                            timeLimit: .seconds(600)))  // ample even when sleeps overrun
        try await client.deleteObject(bucket: bucket, key: key)
        #expect(transport.requests.count == 41)
    }

    @Test func aPersistentFailureEndsOnceTheTimeIsUsedUp() async throws {
        let refusals = Array(repeating: Reply.transportFailure(code: 7, "Connection refused"), count: 100_000)
        let limit = Duration.milliseconds(400)
        let (client, transport) = client(refusals, retry: RetryPolicy(maxAttempts: .max, baseDelay: .milliseconds(5),
                                                                       maxDelay: .milliseconds(40), timeLimit: limit))
        let started = ContinuousClock.now
        await #expect(throws: OBSClientError.self) { try await client.deleteObject(bucket: bucket, key: key) }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= limit, "gave up after \(elapsed)")
        // It stopped because of the time, not because the script ran out (no wall-clock upper
        // bound: sleeps overrun without limit when blocking tests hold the cooperative threads;
        // theLastBackOffEndsAtTheLimit checks the bound itself).
        #expect(transport.requests.count >= 2 && transport.requests.count < refusals.count)
    }

    /// Once a call retried for the whole time on the transport in vain, the next call makes one
    /// attempt (the kernel looks a name up again right after a failed revalidation: `stat` took
    /// twice `retry_timeout=`); an answer ends that, so does a quiet retry time, and a service
    /// error still retries.
    @Test func afterACallUsedUpItsTimeTheNextOneFailsAtOnceUntilTheEndpointAnswers() async throws {
        let refused = Reply.transportFailure(code: 7, "Connection refused")
        let limit = Duration.milliseconds(300)
        let script = Array(repeating: refused, count: 1_000)
        let (client, transport) = client(script, retry: RetryPolicy(maxAttempts: .max, baseDelay: .milliseconds(5), maxDelay: .milliseconds(20),
                                                                    timeLimit: limit))
        await #expect(throws: OBSClientError.self) { try await client.deleteObject(bucket: bucket, key: key) }
        let first = transport.requests.count
        #expect(first >= 2)
        await #expect(throws: OBSClientError.self) { try await client.retrying(client.configuration.retry).deleteObject(bucket: bucket, key: key) }
        #expect(transport.requests.count == first + 1)
        // Quiet for longer than the retry time: the next call gets its retries again.
        try await Task.sleep(for: limit + .milliseconds(100))
        await #expect(throws: OBSClientError.self) { try await client.deleteObject(bucket: bucket, key: key) }
        #expect(transport.requests.count >= first + 3)

        let (answering, scripted) = self.client([refused, Reply.status(204), refused, refused, Reply.status(204), Reply.error(503, "ServiceUnavailable"), Reply.status(204)],
                                                 retry: RetryPolicy(maxAttempts: .max, baseDelay: .milliseconds(1), maxDelay: .milliseconds(2),
                                                                    timeLimit: .seconds(600)))
        answering.reachability.gaveUp()
        await #expect(throws: OBSClientError.self) { try await answering.deleteObject(bucket: bucket, key: key) }
        #expect(scripted.requests.count == 1)
        try await answering.deleteObject(bucket: bucket, key: key)  // an answer: reachable again
        try await answering.deleteObject(bucket: bucket, key: key)  // retried through two refusals
        #expect(scripted.requests.count == 5)
        answering.reachability.gaveUp()
        try await answering.deleteObject(bucket: bucket, key: key)  // a 503 is an answer: retried
        #expect(scripted.requests.count == 7)
    }

    @Test func theLastBackOffEndsAtTheLimit() {
        var generator = SystemRandomNumberGenerator()
        let policy = RetryPolicy(maxAttempts: .max, baseDelay: .seconds(1), maxDelay: .seconds(1), timeLimit: .seconds(10))
        for _ in 0..<50 {
            let delay = policy.nextDelay(afterAttempt: 3, elapsed: .milliseconds(9_900), using: &generator)
            #expect(delay != nil && delay! <= .milliseconds(100))
        }
        #expect(policy.nextDelay(afterAttempt: 3, elapsed: .seconds(10), using: &generator) == nil)
        // The count still bounds a policy without a time limit; a zero limit never retries.
        #expect(RetryPolicy(maxAttempts: 2).nextDelay(afterAttempt: 2, elapsed: .zero, using: &generator) == nil)
        #expect(RetryPolicy.timeBounded(.zero).nextDelay(afterAttempt: 1, elapsed: .zero, using: &generator) == nil)
    }
}
