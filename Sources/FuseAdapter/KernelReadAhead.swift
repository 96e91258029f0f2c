// The kernel's readahead for the mount (`kernel_read_ahead=`). FUSE starts every mount at 128 KiB
// (`read_ahead_kb` of its backing device, /sys/class/bdi/MAJOR:MINOR), and its INIT reply may only
// lower that; a sequential reader then costs one read request per 128 KiB. Raised to `max_write`'s
// 1 MiB, the kernel asks in 1 MiB requests, several in flight, and the daemon answers an eighth of
// the requests (the read stream's run detection allows for their arriving out of order:
// ObjectReadStream's backward tolerance).
//
// When: after the kernel has taken the INIT reply, which sets the value again (to the smaller of
// the two). The kernel sends no other request before that, so the first open or create applies
// it. Only root may write the file; another user's mount keeps the kernel's value, with one log
// line.
import Glibc
import Logging
import SystemFiles

/// The readahead to set once; the Dispatcher takes it out of its slot at the first open or
/// create, so it is written once per mount.
struct KernelReadAhead {
    let bytes: Int64
    /// The mount's backing device, `major:minor`.
    let device: String

    /// Sets `read_ahead_kb`, with a log line either way.
    func apply(logger: Logger) {
        if let failure = write() {
            logger.notice("kernel_read_ahead: the kernel's readahead stays as it was (\(failure))")
        } else {
            logger.info("kernel_read_ahead: the kernel reads ahead \(bytes >> 10) KiB")
        }
    }

    /// nil on success, else why not.
    private func write() -> String? {
        let path = "/sys/class/bdi/\(device)/read_ahead_kb"
        let descriptor = Glibc.open(path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return "open \(path): \(String(cString: strerror(errno)))" }
        defer { Glibc.close(descriptor) }
        let text = Array("\(bytes >> 10)\n".utf8)
        let written = FileSystem.retryingInterrupts { text.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) } }
        guard written == text.count else { return "write \(path): \(written < 0 ? String(cString: strerror(errno)) : "short write")" }
        return nil
    }
}
