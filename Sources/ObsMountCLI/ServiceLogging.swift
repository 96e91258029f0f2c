// Where the log goes when obsmount runs as a service.
// - Under systemd with stderr connected to the journal ($JOURNAL_STREAM names stderr's device
//   and inode), lines carry a `<N>` syslog priority prefix instead of a timestamp: the journal
//   stamps and ranks them itself.
// - SIGHUP reopens log_file= (appending), so that logrotate can move the file away; the handler
//   only writes a byte to a pipe, a thread does the reopening (dup2 onto stderr).
import Logging
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

/// Writes `<priority>level label: message` lines to stderr, for the journal.
struct JournalLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let details = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        FileHandleOutput.standardError("<\(Self.priority(event.level))>\(event.level) \(label): \(event.message)\(details)")
    }

    /// syslog(3) priorities.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Whether stderr is the journal stream systemd connected ($JOURNAL_STREAM is `DEVICE:INODE`).
    static var stderrIsJournal: Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        let fields = value.split(separator: ":")
        var status = stat()
        guard fields.count == 2, let device = UInt64(fields[0]), let inode = UInt64(fields[1]), fstat(2, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }
}

/// Write end of the pipe the SIGHUP handler writes a byte into; set once before the handler.
nonisolated(unsafe) private var hangupPipeWriteEnd: Int32 = -1

enum LogFileReopening {
    /// From now on SIGHUP reopens `path` as stderr. Without a log file SIGHUP is ignored.
    static func install(path: String?, logger: Logger) {
        guard let path else {
            signal(SIGHUP, SIG_IGN)
            return
        }
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else {
            logger.warning("SIGHUP will not reopen \(path): pipe failed with errno \(errno)")
            return
        }
        hangupPipeWriteEnd = ends[1]
        let readEnd = ends[0]
        signal(SIGHUP) { _ in
            var byte: UInt8 = 1
            _ = write(hangupPipeWriteEnd, &byte, 1)
        }
        let thread = ServiceThread.start {
            var byte: UInt8 = 0
            while true {
                guard FileSystem.retryingInterrupts({ read(readEnd, &byte, 1) }) == 1 else { return }
                guard byte == 1 else { continue }
                byte = 0
                let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
                guard descriptor >= 0 else {
                    logger.error("SIGHUP: cannot reopen \(path): \(String(cString: strerror(errno)))")
                    continue
                }
                dup2(descriptor, 2)
                close(descriptor)
                logger.notice("SIGHUP: reopened \(path)")
            }
        }
        if !thread { logger.warning("SIGHUP will not reopen \(path): cannot start a thread") }
    }
}
