// The mount's control socket: `obsmount status` asks the running mount for its uploads.
//
// Design note
// - One Unix stream socket per mount, `<runtime dir>/<hash of the mountpoint>.sock`; the runtime
//   dir is $OBSMOUNT_RUNTIME_DIR, else /run/obsmount for root, else $XDG_RUNTIME_DIR/obsmount,
//   else /tmp/obsmount-UID. The dir is made 0700 and the socket 0600.
// - Access: besides the file modes, every connection's peer credentials (SO_PEERCRED) are
//   checked: only the mount's owner and root get an answer; anyone else gets the line
//   "refused: …" and the connection is closed.
// - Protocol: the client sends one line, `status`; the server answers one JSON document
//   (StatusReply) and closes. Served on one thread of its own with blocking calls: a status
//   request is rare and quick, and must not take a thread of the Swift concurrency pool.
import FoundationEssentials
import ObsFS
#if canImport(Glibc)
import Glibc
#endif

/// What the control socket answers to `status`.
struct StatusReply: Codable, Equatable {
    var mountpoint: String
    var source: String
    var pid: Int32
    var uploads: [StatusSnapshot.Upload]
    var totals: StatusSnapshot.Totals

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

enum ControlSocketPath {
    static var runtimeDirectory: String {
        if let override = environment("OBSMOUNT_RUNTIME_DIR") { return override }
        if getuid() == 0 { return "/run/obsmount" }
        if let runtime = environment("XDG_RUNTIME_DIR") { return runtime + "/obsmount" }
        return "/tmp/obsmount-\(getuid())"
    }

    /// The socket of the mount on `mountpoint` (made absolute, symlinks resolved).
    static func forMountpoint(_ mountpoint: String) -> String {
        "\(runtimeDirectory)/\(hash(canonical(mountpoint))).sock"
    }

    static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// FNV-1a, 64 bits, in hex: a fixed-length name for any mountpoint path.
    private static func hash(_ text: String) -> String {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01b3
        }
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    private static func environment(_ name: String) -> String? {
        guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else { return nil }
        return value
    }
}

/// A Unix socket address for `path` (a leading `@` names an abstract socket), or nil when the
/// path is too long.
func unixAddress(_ path: String) -> (sockaddr_un, socklen_t)? {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(path.utf8)
    let abstract = bytes.first == UInt8(ascii: "@")
    if abstract { bytes[0] = 0 }
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    return (address, socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1)))
}

final class ControlSocketServer: Sendable {
    let path: String
    private let listener: Int32

    /// Binds the socket for `mountpoint` and serves `reply` on its own thread until `close`.
    init(mountpoint: String, reply: @escaping @Sendable () -> StatusReply) throws(MountSetup.Failure) {
        let directory = ControlSocketPath.runtimeDirectory
        let path = ControlSocketPath.forMountpoint(mountpoint)
        self.path = path
        func failure(_ what: String) -> MountSetup.Failure {
            MountSetup.Failure(message: "control socket \(path): \(what): \(String(cString: strerror(errno)))", exitCode: 1)
        }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw failure("cannot create \(directory)") }
        guard let (address, length) = unixAddress(path) else { throw failure("path too long") }
        // A socket left by a mount that died: nobody can be serving this mountpoint now.
        unlink(path)
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw failure("socket") }
        var bound = address
        let status = withUnsafePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        guard status == 0, chmod(path, 0o600) == 0, listen(descriptor, 8) == 0 else {
            let error = failure("cannot bind")
            Glibc.close(descriptor)
            throw error
        }
        listener = descriptor
        let owner = getuid()
        let started = ServiceThread.start {
            while true {
                let connection = accept(descriptor, nil, nil)
                if connection < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return  // closed
                }
                Self.serve(connection, owner: owner, reply: reply)
                Glibc.close(connection)
            }
        }
        guard started else {
            Glibc.close(descriptor)
            unlink(path)
            throw MountSetup.Failure(message: "control socket \(path): cannot start its thread", exitCode: 1)
        }
    }

    /// Stops serving and removes the socket.
    func close() {
        unlink(path)
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private static func serve(_ connection: Int32, owner: uid_t, reply: () -> StatusReply) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var credentials = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
              credentials.uid == owner || credentials.uid == 0 else {
            writeAll(connection, "refused: only uid \(owner) and root may ask this mount\n")
            return
        }
        guard readLine(connection) == "status" else {
            writeAll(connection, "error: the only request is 'status'\n")
            return
        }
        guard let document = try? StatusReply.encoder.encode(reply()) else { return }
        writeAll(connection, String(decoding: document, as: UTF8.self) + "\n")
    }
}

/// `struct ucred` (hidden from Swift behind _GNU_SOURCE): what SO_PEERCRED fills in.
private struct PeerCredentials {
    var pid: pid_t = 0
    var uid: uid_t = 0
    var gid: gid_t = 0
}

/// One line (without its newline) from a socket, at most 1 KiB.
func readLine(_ descriptor: Int32) -> String? {
    var bytes: [UInt8] = []
    var byte: UInt8 = 0
    while bytes.count < 1024 {
        guard read(descriptor, &byte, 1) == 1 else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
        if byte == UInt8(ascii: "\n") { break }
        bytes.append(byte)
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Sends all of `text` on a socket (as far as the peer takes it).
func writeAll(_ descriptor: Int32, _ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        // send, not write: a peer that closed early must not kill this process with SIGPIPE.
        let written = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}
