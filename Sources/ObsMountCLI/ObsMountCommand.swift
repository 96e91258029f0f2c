// `obsmount BUCKET[:/PREFIX] MOUNTPOINT [-f] [-d] [-o OPT[,OPT…]]`.
//
// Exit status: 0 mounted (and, in the foreground, unmounted cleanly); 1 the bucket, credentials,
// endpoint or mountpoint cannot be used (one line says which); 2 a bad option or argument.
import ArgumentParser
import BuildInfo
import FuseAdapter
import Logging
import OBSClient
import OBSProtocol
import ObsFS
#if canImport(Glibc)
import Glibc
#endif

@main
struct ObsMountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "obsmount",
        abstract: "Mount an OBS (or S3-compatible) bucket; files written into it stream up as multipart uploads.",
        discussion: """
            Options (-o, comma-separated), all described in mount-options/README.md:
              endpoint: url=, passwd_file=, dialect=obs|v2|v4, region=, addressing=path|virtual, cafile=, \
            encoding_type=, data_dir=;
              uploads: part_size=, parallel=, memory_budget=, retry_timeout=, stall_timeout=, checksum=, \
            writeback_cache, no_writeback_cache, state_dir=;
              new objects' defaults (each also a user.obs.* xattr, mount-options/xattrs.md): acl=, grant_*=, \
            storage_class=, meta.NAME=, content_type=, content_encoding=, website_redirect=, sse=, \
            sse_kms_key_id=, sse_kms_bucket_key, sse_c_key_file=, expires=, tagging=, persistent.NAME=, \
            object_lock_mode=, object_lock_retain_until=, content_type_inference=, content_type.EXT=;
              reads: read_ahead=, read_memory_budget=, kernel_read_ahead=;
              caches: attr_timeout=, negative_timeout=, saved_attr_timeout=, open_revalidate=;
              filesystem: allow_other, noallow_other, allow_over_mount, ro, rw, uid=, gid=, umask=, log_file=, \
            metrics=, and mount(8)'s generic flags.

            Credentials come from passwd_file= (AK:SK[:TOKEN], mode 600) or OBS_ACCESS_KEY_ID, \
            OBS_SECRET_ACCESS_KEY and OBS_SECURITY_TOKEN. Without url= an embedded obs-local server is \
            started on a free loopback port.

            Exit status: 0 mounted; 1 bucket, credentials, endpoint or mountpoint unusable; 2 bad option.
            """,
        version: "obsmount \(BuildInfo.versionLine)",
        subcommands: [BenchUploadCommand.self, StatusCommand.self, UploadsCommand.self])

    @Argument(help: "BUCKET or BUCKET:/PREFIX") var source: String
    @Argument(help: "Directory to mount on") var mountpoint: String
    @Flag(name: .short, help: "Stay in the foreground.") var foreground = false
    @Flag(name: .short, help: "Debug logging (implies -f) and libfuse's request trace.") var debug = false
    @Option(name: .short, help: "Mount options, comma-separated; may be repeated.") var options: [String] = []

    /// Maps usage errors to exit status 2.
    static func main() async {
        // The root's positional arguments would swallow a subcommand's name, and `help` (which
        // the help text offers): dispatch by hand.
        let arguments = Array(CommandLine.arguments.dropFirst())
        func subcommand(named name: String) -> ParsableCommand.Type? { configuration.subcommands.first { $0._commandName == name } }
        if let name = arguments.first, let subcommand = subcommand(named: name), let asyncSubcommand = subcommand as? AsyncParsableCommand.Type {
            await asyncSubcommand.main(Array(arguments.dropFirst()))
            return
        }
        // `obsmount help [SUBCOMMAND]`; `obsmount help MOUNTPOINT` mounts a bucket named help.
        if arguments.first == "help", arguments.count == 1 || (arguments.count == 2 && subcommand(named: arguments[1]) != nil) {
            print(helpMessage(for: arguments.count == 2 ? subcommand(named: arguments[1])! : ObsMountCommand.self))
            return
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                FileHandleOutput.standardError(fullMessage(for: error))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }

    func run() async throws {
        let mountSource: MountSource
        let mountOptions: MountOptions
        do {
            mountSource = try MountSource(parsing: source)
            mountOptions = try MountOptions(parsing: options)
        } catch {
            FileHandleOutput.standardError("obsmount: \(error)")
            throw ExitCode(2)
        }
        let foreground = foreground || debug
        if !foreground, !Daemon.isChild {
            // Re-exec in the background; this process only reports whether the mount came up.
            throw ExitCode(Daemon.spawnAndWaitForReady())
        }
        let logger = LogSetup.makeLogger(debug: debug)
        let metrics = mountOptions.metrics.map { ($0, MetricsServer.bootstrap()) }
        do {
            let mount = try await MountSetup.prepare(source: mountSource, options: mountOptions, mountpoint: mountpoint, debug: debug, logger: logger)
            let service: MountService
            do {
                service = try MountService(mount: mount, source: mountSource, mountpoint: mountpoint, metrics: metrics, logger: logger)
            } catch {
                // The session, never run, unmounts when it goes.
                mount.stopEmbeddedServer(logger: logger)
                throw error
            }
            let reopenedLog = Daemon.isChild ? mountOptions.logFile : nil
            Daemon.reportReady(logFile: mountOptions.logFile)
            service.started(reopening: reopenedLog)
            // Once the log is where the mount writes it (log_file=): what it aborts is reported there.
            MountSetup.abortOrphanedUploads(mount.store, source: mountSource, logger: logger)
            await mount.session.run(stopping: service.stopping)
            service.stopped()
            mount.closeUploadJournal(logger: logger)
            mount.stopEmbeddedServer(logger: logger)
        } catch let failure as MountSetup.Failure {
            FileHandleOutput.standardError("obsmount: \(failure.message)")
            throw ExitCode(failure.exitCode)
        }
    }
}

/// Writing a line to stderr without Foundation.
enum FileHandleOutput {
    static func standardError(_ line: String) { writeLine(line, to: 2) }

    static func standardOutput(_ line: String) { writeLine(line, to: 1) }

    private static func writeLine(_ line: String, to descriptor: Int32) {
        let text = line.hasSuffix("\n") ? line : line + "\n"
        _ = text.withCString { write(descriptor, $0, strlen($0)) }
    }
}

enum LogSetup {
    static func makeLogger(debug: Bool) -> Logger {
        let journal = JournalLogHandler.stderrIsJournal
        LoggingSystem.bootstrap { label in
            if journal { return JournalLogHandler(label: label, logLevel: debug ? .debug : .info) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = debug ? .debug : .info
            return handler
        }
        return Logger(label: "obsmount")
    }
}
