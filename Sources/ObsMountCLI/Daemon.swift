// Daemonizing by re-exec: the foreground process validates its arguments, then spawns itself
// (/proc/self/exe, same arguments) in a new session with OBSMOUNT_READY_FD naming a pipe, and
// exits 0 once the child writes "ready" there, or with the child's exit status if it fails.
// Re-exec instead of fork: by the time the mount is ready, threads (client, server, Swift
// concurrency) exist, and fork only copies the calling one. The child's stderr is inherited
// until the mount is ready, so a one-line error reaches the user; then the child's log goes to
// log_file= (or nowhere), so the caller's terminal or pipe is released.
#if canImport(Glibc)
import Glibc
#endif

enum Daemon {
    static let readyVariable = "OBSMOUNT_READY_FD"
    /// glibc's POSIX_SPAWN_SETSID (since 2.26), hidden from Swift behind _GNU_SOURCE.
    private static let spawnSetSID: Int16 = 0x80

    /// This process is the background child.
    static var isChild: Bool { getenv(readyVariable) != nil }

    /// Spawns the background child and returns the exit status this process should end with.
    static func spawnAndWaitForReady() -> Int32 {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else {
            FileHandleOutput.standardError("obsmount: cannot create a pipe: \(String(cString: strerror(errno)))")
            return 1
        }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        let environment = environmentEntries() + ["\(readyVariable)=\(writeEnd)"]
        var cArguments = CommandLine.arguments.map { strdup($0) } + [nil]
        var cEnvironment = environment.map { strdup($0) } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addclose(&actions, readEnd)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, spawnSetSID)

        var child = pid_t()
        let spawned = posix_spawn(&child, "/proc/self/exe", &actions, &attributes, &cArguments, &cEnvironment)
        close(writeEnd)
        for case let entry? in cEnvironment { memset(entry, 0, strlen(entry)) }  // copies of secrets among them
        MountSetup.scrubSecretsFromEnvironment()  // the child has them; this process waits for it
        guard spawned == 0 else {
            FileHandleOutput.standardError("obsmount: cannot start the background process: \(String(cString: strerror(spawned)))")
            return 1
        }
        var message = [UInt8](repeating: 0, count: 16)
        let count = message.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
        close(readEnd)
        if count > 0, String(decoding: message[0..<count], as: UTF8.self).hasPrefix("ready") { return 0 }
        var status: Int32 = 0
        waitpid(child, &status, 0)
        // WIFEXITED / WEXITSTATUS
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 1
    }

    /// Tells the waiting foreground process that the mount is ready (child only), and detaches
    /// from its stderr: from now on the log goes to `logFile` (appended) or nowhere.
    static func reportReady(logFile: String?) {
        guard let variable = getenv(readyVariable), let descriptor = Int32(String(cString: variable)) else { return }
        let target = logFile.map { open($0, O_WRONLY | O_APPEND | O_CREAT, 0o600) } ?? open("/dev/null", O_WRONLY)
        if target >= 0 {
            dup2(target, 2)
            close(target)
        }
        _ = "ready".withCString { write(descriptor, $0, 5) }
        close(descriptor)
        unsetenv(readyVariable)
    }

    private static func environmentEntries() -> [String] {
        var entries: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if !text.hasPrefix(readyVariable + "=") { entries.append(text) }
            pointer += 1
        }
        return entries
    }
}
