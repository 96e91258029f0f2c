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
//   (StatusReply) and closes (served by ListeningSocket's accept thread).
import FoundationEssentials
import OBSHashing
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
    var operations: [StatusSnapshot.Operation]
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
        let hex = String(FNV1a.hash(text), radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    private static func environment(_ name: String) -> String? {
        guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else { return nil }
        return value
    }
}

final class ControlSocketServer: Sendable {
    let path: String
    private let listener: Int32

    /// Binds the socket for `mountpoint` and serves `reply` on its own thread until `close`.
    init(mountpoint: String, reply: @escaping @Sendable () -> StatusReply) throws(SocketError) {
        let directory = ControlSocketPath.runtimeDirectory
        path = ControlSocketPath.forMountpoint(mountpoint)
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw SocketError("cannot create \(directory)") }
        // A socket left by a mount that died is replaced: nobody can be serving this mountpoint now.
        listener = try ListeningSocket.unix(path: path)
        let owner = getuid()
        guard ListeningSocket.serve(listener, { Self.serve($0, owner: owner, reply: reply) }) else {
            Glibc.close(listener)
            unlink(path)
            throw SocketError("cannot start a thread for \(path)", errno: EAGAIN)
        }
    }

    /// Stops serving and removes the socket.
    func close() {
        unlink(path)
        shutdown(listener, Int32(SHUT_RDWR))
    }

    private static func serve(_ connection: Int32, owner: uid_t, reply: () -> StatusReply) {
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
        writeAll(connection, Array(document) + [UInt8(ascii: "\n")])
    }
}

/// `struct ucred` (hidden from Swift behind _GNU_SOURCE): what SO_PEERCRED fills in.
private struct PeerCredentials {
    var pid: pid_t = 0
    var uid: uid_t = 0
    var gid: gid_t = 0
}
