// The systemd notification protocol (sd_notify(3)) without libsystemd: one datagram of
// `NAME=value` lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a leading `@` names an
// abstract socket). Outside systemd ($NOTIFY_SOCKET unset) every call does nothing.
//
// obsmount sends READY=1 once the mount answers, STATUS= with its upload counters every few
// seconds, and STOPPING=1 when the session loop ended and open uploads are being finished.
import ObsFS
#if canImport(Glibc)
import Glibc
#endif

enum SystemdNotify {
    /// Whether this process runs under a service manager that listens.
    static var isActive: Bool { socketPath != nil }

    private static var socketPath: String? {
        guard let value = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), value.hasPrefix("/") || value.hasPrefix("@") else { return nil }
        return value
    }

    /// Sends `message` (newline-separated assignments); false when it could not be delivered.
    @discardableResult
    static func send(_ message: String) -> Bool {
        guard let path = socketPath else { return false }
        guard let (unix, length) = unixAddress(path) else { return false }
        var address = unix
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let sent = message.withCString { text in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(descriptor, text, strlen(text), Int32(MSG_NOSIGNAL), $0, length) }
            }
        }
        return sent >= 0
    }

    /// The one-line STATUS= text: open uploads and totals.
    static func statusLine(_ snapshot: StatusSnapshot) -> String {
        let totals = snapshot.totals
        return "\(totals.openUploads) uploads open, \(ByteFormat.binary(totals.bytesUploaded)) uploaded, \(totals.objectsCompleted) objects, "
            + "\(totals.uploadsFailed) failed, \(totals.retries) retries, buffers \(ByteFormat.binary(totals.memoryInUse)) of \(ByteFormat.binary(totals.memoryBudget))"
    }

    /// Sends STATUS= every `interval` (the first after one interval, so that READY=1 comes
    /// first) until the task is cancelled.
    static func reportStatus(every interval: Duration, _ snapshot: @escaping @Sendable () -> StatusSnapshot) -> Task<Void, Never>? {
        guard isActive else { return nil }
        return Task.detached {
            while (try? await Task.sleep(for: interval)) != nil {
                send("STATUS=" + statusLine(snapshot()))
            }
        }
    }
}
