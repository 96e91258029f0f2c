// The mount's state on local disk (`state_dir=`): the upload journal
// (Sources/ObsFS/Upload/UploadJournal.swift): opening it, adopting what crashed predecessors
// left, closing it at unmount; the HEAD answers saved for later mounts
// (Sources/ObsFS/Namespace/SavedHeadAnswers.swift).
import Logging
import OBSProtocol
import ObsFS
#if canImport(Glibc)
import Glibc
#endif

extension MountSetup {
    /// `state_dir=`, else `$XDG_STATE_HOME/obsmount`, else `/var/lib/obsmount` for root and
    /// `~/.local/state/obsmount` for other users.
    static func stateDirectory(_ options: MountOptions) -> String {
        if let directory = options.stateDirectory { return directory }
        if let xdg = getenv("XDG_STATE_HOME").map({ String(cString: $0) }), !xdg.isEmpty { return xdg + "/obsmount" }
        if getuid() == 0 { return "/var/lib/obsmount" }
        return (getenv("HOME").map { String(cString: $0) } ?? "/tmp") + "/.local/state/obsmount"
    }

    /// What names the store in the state directory: the endpoint, or the embedded server's data.
    private static func endpointName(_ options: MountOptions) -> String {
        options.endpoint ?? "embedded obs-local of \(options.dataDirectory ?? EmbeddedServer.defaultDataDirectory())"
    }

    /// This mount's journal, in the directory of its endpoint (or the embedded server), bucket and prefix.
    static func openUploadJournal(source: MountSource, options: MountOptions, logger: Logger) throws -> UploadJournal {
        let endpoint = endpointName(options)
        let directory = UploadJournal.directory(stateDirectory: stateDirectory(options), endpoint: endpoint, bucket: source.bucket,
                                                prefix: source.prefix)
        do {
            return try UploadJournal(directory: directory, description: "\(source) at \(endpoint)", logger: logger)
        } catch {
            throw Failure(message: "\(error) (set state_dir= to a writable directory)", exitCode: 1)
        }
    }

    /// The HEAD answers saved by mounts of this endpoint, bucket and prefix (nil with
    /// `saved_attr_timeout=0` or `attr_timeout=0`, or when the directory cannot be made: a
    /// warning, and the mount goes on without).
    static func openSavedHeadAnswers(source: MountSource, options: MountOptions, logger: Logger) -> SavedHeadAnswers? {
        guard options.savedAttributeTimeout > .zero, options.attributeTimeout > .zero else { return nil }
        let directory = SavedHeadAnswers.directory(stateDirectory: stateDirectory(options), endpoint: endpointName(options),
                                                   bucket: source.bucket, prefix: source.prefix)
        do {
            return try SavedHeadAnswers(directory: directory, lifetime: options.savedAttributeTimeout, logger: logger)
        } catch {
            logger.warning("saved attributes: \(error); every mount asks for them again (set state_dir= to a writable directory)")
            return nil
        }
    }

    /// Starts aborting what mounts of this bucket and prefix that are gone left open, and says so.
    static func abortOrphanedUploads(_ store: OBSClientStore, source: MountSource, logger: Logger) {
        let orphans = store.abortOrphanedUploads()
        guard !orphans.isEmpty, let journal = store.uploadJournal else { return }
        logger.warning("\(orphans.count) multipart upload(s) of \(source) were left open by an earlier mount that ended without finishing them (journal \(journal.directory)); aborting them in the background: \(orphans.map { "\($0.key) (\($0.uploadID))" }.joined(separator: ", "))")
    }

    /// At unmount: stops the background aborts (what is left stays journaled for the next mount)
    /// and closes the journal, removing it when nothing is open.
    func closeUploadJournal(logger: Logger) {
        store.backgroundAborts?.stop()
        guard let journal = store.uploadJournal else { return }
        let open = journal.openUploads
        if !open.isEmpty {
            logger.warning("\(open.count) upload(s) could not be aborted before unmounting; the next mount of this bucket aborts them (journal \(journal.path))")
        }
        journal.close()
    }
}
