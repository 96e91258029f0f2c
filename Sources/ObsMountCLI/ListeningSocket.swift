// Listening sockets for what the mount serves besides the filesystem (the control socket, the
// metrics endpoint): binding a Unix or loopback TCP socket, and an accept loop on a thread of
// its own (blocking calls: requests are rare and small, and must not take a thread of the
// Swift concurrency pool). Plus line and whole-buffer I/O on connected sockets.
#if canImport(Glibc)
import Glibc
#endif
import SystemFiles

/// A socket that cannot be set up: one line.
struct SocketError: Error, CustomStringConvertible {
    let description: String

    init(_ what: String, errno code: Int32 = errno) {
        description = "\(what): \(String(cString: strerror(code)))"
    }
}

enum ListeningSocket {
    /// A Unix stream socket listening at `path` (a file left there is replaced), mode 0600.
    static func unix(path: String) throws(SocketError) -> Int32 {
        guard let (unix, length) = unixAddress(path) else { throw SocketError("\(path): path too long", errno: ENAMETOOLONG) }
        var address = unix
        unlink(path)
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SocketError("socket") }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        guard bound == 0, chmod(path, 0o600) == 0, listen(descriptor, 16) == 0 else {
            let error = SocketError("cannot listen at \(path)")
            close(descriptor)
            throw error
        }
        return descriptor
    }

    /// A TCP socket listening on a loopback address (`127.0.0.1` or `::1`); returns the port
    /// it got (the one asked for, or a free one for 0).
    static func loopback(host: String, port: UInt16) throws(SocketError) -> (descriptor: Int32, port: UInt16) {
        let family = host.contains(":") ? AF_INET6 : AF_INET
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SocketError("socket") }
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        let length: socklen_t
        if family == AF_INET6 {
            length = withUnsafeMutableBytes(of: &storage) { raw in
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                address.pointee.sin6_family = sa_family_t(AF_INET6)
                address.pointee.sin6_port = port.bigEndian
                inet_pton(AF_INET6, host, &address.pointee.sin6_addr)
                return socklen_t(MemoryLayout<sockaddr_in6>.size)
            }
        } else {
            length = withUnsafeMutableBytes(of: &storage) { raw in
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                address.pointee.sin_family = sa_family_t(AF_INET)
                address.pointee.sin_port = port.bigEndian
                inet_pton(AF_INET, host, &address.pointee.sin_addr)
                return socklen_t(MemoryLayout<sockaddr_in>.size)
            }
        }
        var boundLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ready = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && listen(descriptor, 16) == 0 && getsockname(descriptor, $0, &boundLength) == 0
            }
        }
        guard ready else {
            let error = SocketError("cannot listen on \(host) port \(port)")
            close(descriptor)
            throw error
        }
        // sin_port and sin6_port sit at the same offset.
        let boundPort = withUnsafeBytes(of: &storage) { $0.load(fromByteOffset: 2, as: UInt16.self) }
        return (descriptor, UInt16(bigEndian: boundPort))
    }

    /// Accepts connections on a thread of its own and hands each to `handle` (with 5-second
    /// send and receive timeouts), closing it afterwards, until `descriptor` is shut down.
    static func serve(_ descriptor: Int32, _ handle: @escaping @Sendable (Int32) -> Void) -> Bool {
        ServiceThread.start {
            while true {
                let connection = FileSystem.retryingInterrupts { accept(descriptor, nil, nil) }
                if connection < 0 {
                    if errno == ECONNABORTED { continue }
                    return  // shut down
                }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                handle(connection)
                close(connection)
            }
        }
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

/// Sends all of `bytes` on a socket (as far as the peer takes it).
func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
    var rest = bytes[...]
    while !rest.isEmpty {
        // send, not write: a peer that closed early must not kill this process with SIGPIPE.
        let written = FileSystem.retryingInterrupts { rest.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        guard written > 0 else { return }
        rest = rest.dropFirst(written)
    }
}

func writeAll(_ descriptor: Int32, _ text: String) { writeAll(descriptor, Array(text.utf8)) }
