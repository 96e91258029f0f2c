// A directory this mount made holds every name there is for `negative_timeout=` after its mkdir
// (InodeTable.holdEveryChild): a name it does not hold is missing without a request. Once that
// has run out, a lookup of a missing name there would ask the store for it (HEAD, LIST and HEAD
// at once: three requests), one for each file a program then creates. Instead the first such
// lookup lists the directory, one page: when the listing shows no name the table does not hold,
// the hold is renewed from the moment the LIST was sent (a name another client stores later is
// found once it runs out again, as after any negative answer) and the lookup answers from the
// table. A listing with a name the table does not hold (another client's), or longer than a
// page, ends the hold for good: lookups there ask for each name from then on. Lookups at the
// same time share one LIST; a failed LIST leaves the hold as it was and the lookup asks for
// its name.
import Synchronization

/// The LISTs under way that may renew a directory's hold of every child, one per directory.
final class EveryChildRenewals: Sendable {
    /// Guards the map of LISTs under way; held only to start, join or end one.
    private let underWay = Mutex<[InodeNumber: Task<Void, Never>]>([:])

    /// Runs `renewal` for `directory`, or waits for the one already under way.
    func renew(_ directory: InodeNumber, _ renewal: @escaping @Sendable () async -> Void) async {
        let task = underWay.withLock { tasks in
            if let running = tasks[directory] { return running }
            let task = Task {
                await renewal()
                self.underWay.withLock { _ = $0.removeValue(forKey: directory) }
            }
            tasks[directory] = task
            return task
        }
        await task.value
    }
}

extension ObsFileSystem {
    /// Lists `directory` (one page) to renew its lapsed hold of every child (see above).
    func renewEveryChild(of directory: InodeNumber) async {
        await everyChildRenewals.renew(directory) { [self] in
            guard table.holdOfEveryChildLapsed(directory), let path = table.path(of: directory) else { return }
            let prefix = listPrefix(ofDirectory: path)
            let sent = ContinuousClock.now
            let listing: ObjectListing
            do {
                listing = try await store.listObjects(prefix: prefix, delimiter: "/", marker: nil, maxKeys: configuration.listPageSize)
            } catch {
                logger.debug("listing \(prefix) to renew what this mount knows of it: \(error)")
                return
            }
            var names: [String] = []
            for object in listing.objects {
                switch KeyNaming.classify(objectKey: object.key.rawValue, under: prefix) {
                case .file(let name), .directory(let name): names.append(name)
                case .hidden, .unusable: break
                }
            }
            for common in listing.commonPrefixes {
                if case .directory(let name) = KeyNaming.classify(commonPrefix: common, under: prefix) { names.append(name) }
            }
            let hidden = Set(openFiles.withLock { $0.hiddenNames(in: directory) }.map(ExactName.init))
            _ = table.renewEveryChild(of: directory, listed: names, alsoKnown: hidden, complete: listing.nextMarker == nil,
                                      listedAt: sent, for: configuration.negativeTimeout)
        }
    }
}
