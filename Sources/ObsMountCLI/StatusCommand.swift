// `obsmount status [MOUNTPOINT] [--json] [--watch]`: asks running mounts over their control
// sockets (ControlSocket.swift) for open uploads and totals, and prints them as a table, as
// JSON, or (--watch) as a table redrawn in place every second with a progress bar per file.
//
// Without MOUNTPOINT every mount of this user (every socket in the runtime dir) is shown. The
// bar of a file shows the bytes durable on the server out of the bytes written so far (the
// final size is unknown while the file is being written).
import ArgumentParser
import FoundationEssentials
import ObsFS
import SystemFiles
#if canImport(Glibc)
import Glibc
#endif

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the open uploads and upload totals of running mounts.")

    @Argument(help: "The mount to ask (default: every mount of this user).") var mountpoint: String?
    @Flag(help: "Print one JSON document (an array of mounts).") var json = false
    @Flag(help: "Redraw every second with a progress bar per file, until interrupted.") var watch = false
    @Option(help: "Seconds between redraws with --watch.") var interval: Double = 1

    func validate() throws {
        guard !(json && watch) else { throw ValidationError("--json and --watch exclude each other") }
        guard interval >= 0.1 else { throw ValidationError("--interval must be at least 0.1") }
    }

    func run() async throws {
        let sockets = try socketPaths()
        if json {
            let replies = try answers(sockets)
            FileHandleOutput.standardOutput(String(decoding: try StatusReply.encoder.encode(replies), as: UTF8.self))
            return
        }
        let inPlace = isatty(1) != 0
        repeat {
            let text = try answers(sockets).map(StatusTable.render).joined(separator: "\n")
            FileHandleOutput.standardOutput((watch && inPlace ? "\u{1B}[H\u{1B}[J" : "") + text + (watch && !inPlace ? "\n" : ""))
            if watch { try await Task.sleep(for: .milliseconds(Int(interval * 1000))) }
        } while watch
    }

    /// The replies of the mounts serving `sockets`. Asked for every mount, a socket nothing
    /// listens on any more (left by a mount that was killed) is removed without a word, and one
    /// that fails otherwise is skipped with a line on stderr, so that the live mounts are still
    /// shown; asked for one mount, its failure is the command's.
    private func answers(_ sockets: [String]) throws -> [StatusReply] {
        guard mountpoint == nil else { return try sockets.map(Self.ask) }
        var replies: [StatusReply] = []
        var failures: [String] = []
        for socket in sockets {
            do {
                replies.append(try Self.ask(socket))
            } catch let error as StatusError where error.nobodyListens {
                Self.removeIfLeftBehind(socket)
                failures.append("\(error)")
            } catch {
                failures.append("\(error)")
                FileHandleOutput.standardError("obsmount status: skipped \(error)")
            }
        }
        guard !replies.isEmpty else { throw StatusError("no mount answered: \(failures.joined(separator: "; "))") }
        return replies
    }

    /// How long a socket nothing listens on may be a mount starting up (it binds, then listens).
    static let startingMountGrace: Int = 10

    /// Removes `socket`, which nothing listens on, unless it was made in the last moments.
    private static func removeIfLeftBehind(_ socket: String) {
        var info = stat()
        guard stat(socket, &info) == 0, time(nil) - info.st_mtim.tv_sec > startingMountGrace else { return }
        unlink(socket)
    }

    private func socketPaths() throws -> [String] {
        if let mountpoint {
            guard !MountTable.fuseMounts(on: mountpoint).isEmpty else { throw StatusError("\(mountpoint) is not a mount point") }
            return [ControlSocketPath.forMountpoint(mountpoint)]
        }
        let directory = ControlSocketPath.runtimeDirectory
        guard let stream = opendir(directory) else { throw StatusError("no mounts: \(directory) does not exist") }
        defer { closedir(stream) }
        var paths: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".sock") { paths.append(directory + "/" + name) }
        }
        guard !paths.isEmpty else { throw StatusError("no mounts: no control socket in \(directory)") }
        return paths.sorted()
    }

    /// The reply of the mount serving `path`.
    static func ask(_ path: String) throws -> StatusReply {
        guard let (unix, length) = unixAddress(path) else { throw StatusError("\(path): path too long") }
        var address = unix
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw StatusError("socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, length) } }
        guard connected == 0 else {
            let nobodyListens = errno == ENOENT || errno == ECONNREFUSED
            let reason = nobodyListens ? "no mount is serving it (is it mounted by obsmount?)" : String(cString: strerror(errno))
            throw StatusError("cannot reach \(path): \(reason)", nobodyListens: nobodyListens)
        }
        // A mount that is alive but stuck must not hold the command for ever.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        writeAll(descriptor, "status\n")
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = FileSystem.retryingInterrupts { buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) } }
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if text.hasPrefix("refused") || text.hasPrefix("error") {
            throw StatusError("\(path): \(text.split(whereSeparator: \.isNewline).first ?? "")")
        }
        do {
            return try JSONDecoder().decode(StatusReply.self, from: Data(bytes))
        } catch {
            throw StatusError("\(path): unreadable answer (\(error))")
        }
    }
}

struct StatusError: Error, CustomStringConvertible {
    let description: String
    /// The mount's socket is gone or nothing listens on it.
    let nobodyListens: Bool
    init(_ description: String, nobodyListens: Bool = false) {
        self.description = description
        self.nobodyListens = nobodyListens
    }
}

/// The human-readable status of one mount.
enum StatusTable {
    static let barWidth = 20

    static func render(_ reply: StatusReply) -> String {
        let totals = reply.totals
        var lines = [
            "\(reply.source) on \(reply.mountpoint) (pid \(reply.pid))",
            "  uploaded \(ByteFormat.binary(totals.bytesUploaded)) in \(totals.partsUploaded) parts, \(totals.objectsCompleted) objects completed, "
                + "\(totals.uploadsFailed) failed, \(totals.uploadsAborted) aborted, \(totals.retries) retries; "
                + "buffers \(ByteFormat.binary(totals.memoryInUse)) of \(ByteFormat.binary(totals.memoryBudget))",
        ]
        if reply.uploads.isEmpty {
            lines.append("  no open uploads")
        }
        for upload in reply.uploads {
            let fraction = upload.bytesWritten > 0 ? Double(upload.bytesDurable) / Double(upload.bytesWritten) : 0
            let filled = min(barWidth, Int((fraction * Double(barWidth)).rounded(.down)))
            let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: barWidth - filled) + "]"
            lines.append("  \(upload.path)")
            lines.append("    \(bar) \(ByteFormat.binary(upload.bytesDurable)) durable of \(ByteFormat.binary(upload.bytesWritten)) written, "
                         + "\(ByteFormat.binary(Int64(upload.bytesPerSecond)))/s, \(upload.partsInFlight) parts in flight, "
                         + "\(upload.partsUploaded) uploaded, \(upload.partsRetried) retried, upload ID \(upload.uploadID)")
        }
        for operation in reply.operations {
            lines.append("  \(operation.description): \(operation.done) of \(operation.total) \(operation.unit), \(Int(operation.seconds)) s")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Byte counts for people: `1.5 GiB`.
enum ByteFormat {
    static func binary(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while abs(value) >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}
