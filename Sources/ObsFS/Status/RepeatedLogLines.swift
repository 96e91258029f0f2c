// Log lines a program can cause thousands of times a second (an unsupported fallocate mode, an
// open refused for lack of part buffers, a hard link): the first of a kind is logged, then at
// most one per `interval`, saying how many like it were left out. stress-ng's fallocate and open
// stressors wrote 13,000 and 4,500 identical lines in 4 s each before.
import Logging
import Synchronization

final class RepeatedLogLines: Sendable {
    private let interval: Duration
    /// Per kind: when its last line was logged, and how many were left out since.
    private let kinds = Mutex<[String: (logged: ContinuousClock.Instant, leftOut: Int)]>([:])

    init(interval: Duration = .seconds(10)) {
        self.interval = interval
    }

    /// Logs `message` at `level` unless a line of `kind` was logged less than `interval` ago.
    func log(_ level: Logger.Level, _ message: @autoclosure () -> String, kind: String, to logger: Logger) {
        guard let leftOut = admit(kind) else { return }
        let suffix = leftOut > 0 ? " (and \(leftOut) more like it in the last \(interval))" : ""
        logger.log(level: level, "\(message())\(suffix)")
    }

    /// Whether a line of `kind` is logged at `now`: nil when it is left out, else how many were
    /// left out since the last one.
    func admit(_ kind: String, now: ContinuousClock.Instant = .now) -> Int? {
        kinds.withLock { kinds -> Int? in
            if let last = kinds[kind], now - last.logged < interval {
                kinds[kind]?.leftOut += 1
                return nil
            }
            defer { kinds[kind] = (now, 0) }
            return kinds[kind]?.leftOut ?? 0
        }
    }
}
