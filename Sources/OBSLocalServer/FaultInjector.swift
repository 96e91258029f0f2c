// Fault injection for reliability tests.
//
// Admin interface (no signature; only answered to peers on a loopback address):
//
//   POST   /_obs-local/faults   body: one rule object or an array of rules (JSON); reply
//                               {"ids":[…]}; rules apply in the order added, the first that
//                               fires wins
//   GET    /_obs-local/faults   reply: the rules with their "matched" and "fired" counters
//   DELETE /_obs-local/faults   removes every rule and ends a "refuse" window
//   DELETE /_obs-local/faults/ID removes one rule (AdminAPI.swift)
//
// A rule:
//   {"operation": "UploadPart",      // operation name as in the request log ("*" or absent: any)
//    "bucket": "b", "key": "dir/*.bin", // optional; key is a glob (* any run, ? one character)
//    "nth": 3,                        // the 3rd matching request is the first to fire (default 1)
//    "times": 2,                      // it fires for this many matching requests (default 1; 0: forever)
//    "action": "error",               // "error" | "delay" | "cut" | "refuse" | "kill"
//    "status": 503, "code": "SlowDown", "message": "…",  // error (status defaults from the code)
//    "delayMs": 1500,                 // delay: wait, then handle normally (also delays an error)
//    "afterBytes": 65536,             // cut: close the connection (RST) after this many body bytes
//    "seconds": 2.5}                  // refuse: from now on, for this long, every request but the
//                                     // admin ones has its connection reset (RST) as soon as its
//                                     // head arrives, on new and kept-alive connections alike
//
// "refuse" without "operation" and "key" takes effect when posted (no request matching; DELETE
// ends it early). With either, it is a trigger: the first request it fires for opens the window,
// and the window resets only the requests whose bucket and key the rule matches, whatever their
// operation (an outage of one file's requests, so that tests of other keys can run meanwhile).
// "kill" ends obs-local with SIGKILL when it fires (a server crash at a chosen request; the test
// restarts it on the same port and data directory). The others are checked once per request,
// after routing and the signature check and before the body is read.
// Values are clamped: delays to one hour, refuse windows to one day, statuses to 200...599.
import FoundationEssentials
import OBSProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One fault rule (see the file comment for the JSON form).
struct FaultRule: Codable, Sendable {
    enum Action: String, Codable, Sendable {
        case error, delay, cut, refuse, kill
    }

    var id: Int?
    var operation: String?
    var bucket: String?
    var key: String?
    var nth: Int?
    var times: Int?
    var action: Action
    var status: Int?
    var code: String?
    var message: String?
    var delayMs: Int?
    var afterBytes: Int?
    var seconds: Double?
    /// Requests that matched so far.
    var matched: Int?
    /// Requests the rule acted on so far.
    var fired: Int?

    /// A "refuse" rule that waits for a matching request to open its window (see the file comment).
    var isTriggeredRefusal: Bool { action == .refuse && (operation != nil || key != nil) }

    func matches(operation name: String, bucket: BucketName?, key: ObjectKey?) -> Bool {
        if let operation, operation != "*", operation != name { return false }
        return matches(bucket: bucket, key: key)
    }

    func matches(bucket: BucketName?, key: ObjectKey?) -> Bool {
        if let wanted = self.bucket, wanted != bucket?.rawValue { return false }
        if let pattern = self.key {
            guard let key, Glob.matches(pattern, key.rawValue) else { return false }
        }
        return true
    }
}

/// What to do to one request.
struct FaultDecision: Sendable {
    var delayMilliseconds: Int = 0
    var error: OBSLocalError?
    /// Close the connection after this many body bytes (0: at once, a refused request).
    var cutAfterBytes: Int?
    /// End the server with SIGKILL.
    var kill = false
}

/// The active rules. Thread-safe.
final class FaultInjector: Sendable {
    private struct State {
        var rules: [FaultRule] = []
        var nextID = 1
        /// Requests are refused (connection reset) until this time (monotonic nanoseconds).
        var refuseUntil: UInt64 = 0
        /// The open windows of triggered "refuse" rules: rule ID → end (monotonic nanoseconds).
        var triggeredWindows: [Int: UInt64] = [:]
    }

    /// Bounds on rule values (beyond them a rule is clamped, never trusted into an overflow).
    static let longestWindowSeconds = 86_400.0
    static let longestDelayMilliseconds = 3_600_000

    /// Rules, counters and the refuse window; held briefly per request and per admin call.
    private let state = Mutex(State())

    func add(_ rules: [FaultRule]) -> [Int] {
        state.withLock { state in
            rules.map { rule in
                var rule = rule
                rule.id = state.nextID
                rule.matched = 0
                rule.fired = 0
                state.nextID += 1
                if rule.action == .refuse, !rule.isTriggeredRefusal {
                    state.refuseUntil = Self.monotonicNow() + Self.windowNanoseconds(rule)
                    rule.fired = 1
                }
                state.rules.append(rule)
                return rule.id!
            }
        }
    }

    /// Removes one rule (and its triggered window); false when there is no such rule.
    func remove(id: Int) -> Bool {
        state.withLock { state in
            guard let index = state.rules.firstIndex(where: { $0.id == id }) else { return false }
            state.rules.remove(at: index)
            state.triggeredWindows[id] = nil
            return true
        }
    }

    func clear() { state.withLock { $0 = State(nextID: $0.nextID) } }

    func rules() -> [FaultRule] { state.withLock { $0.rules } }

    /// True while a "refuse" window is open.
    var refusingConnections: Bool { state.withLock { $0.refuseUntil > Self.monotonicNow() } }

    /// Counts the request against every matching rule and returns what the first firing rule says.
    func decide(operation: String, bucket: BucketName?, key: ObjectKey?) -> FaultDecision? {
        state.withLock { state in
            let now = Self.monotonicNow()
            for rule in state.rules where rule.isTriggeredRefusal && state.triggeredWindows[rule.id!, default: 0] > now {
                if rule.matches(bucket: bucket, key: key) { return FaultDecision(cutAfterBytes: 0) }
            }
            var decision: FaultDecision?
            for index in state.rules.indices where state.rules[index].action != .refuse || state.rules[index].isTriggeredRefusal {
                guard state.rules[index].matches(operation: operation, bucket: bucket, key: key) else { continue }
                let rule = state.rules[index]
                let matched = (rule.matched ?? 0) + 1
                state.rules[index].matched = matched
                let first = max(1, rule.nth ?? 1), times = rule.times ?? 1
                let fires = matched >= first && (times == 0 || matched < first + times)
                guard fires, decision == nil else { continue }
                state.rules[index].fired = (rule.fired ?? 0) + 1
                var result = FaultDecision(delayMilliseconds: min(max(0, rule.delayMs ?? 0), FaultInjector.longestDelayMilliseconds))
                switch rule.action {
                case .error:
                    let code = ObsErrorCode(rule.code ?? "InternalError")
                    let status = rule.status.map { min(max($0, 200), 599) } ?? code.httpStatus
                    result.error = OBSLocalError(code, rule.message ?? "Injected fault.", status: status)
                case .cut:
                    result.cutAfterBytes = max(0, rule.afterBytes ?? 0)
                case .refuse:
                    state.triggeredWindows[rule.id!] = now + Self.windowNanoseconds(rule)
                    result.cutAfterBytes = 0
                case .kill:
                    result.kill = true
                case .delay:
                    break
                }
                decision = result
            }
            return decision
        }
    }

    private static func windowNanoseconds(_ rule: FaultRule) -> UInt64 {
        UInt64(min(max(0, rule.seconds ?? 1), longestWindowSeconds) * 1e9)
    }

    static func monotonicNow() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}

/// Shell-style wildcard matching: `*` any run of characters (including `/`), `?` one character.
enum Glob {
    static func matches(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var pi = 0, ti = 0, starP = -1, starT = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) {
                pi += 1
                ti += 1
            } else if pi < p.count && p[pi] == "*" {
                starP = pi
                starT = ti
                pi += 1
            } else if starP >= 0 {
                pi = starP + 1
                starT += 1
                ti = starT
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
