// The `fuse_lowlevel_ops` table: one C callback per FUSE operation, each converting its
// arguments and calling the core through the Dispatcher (the design note of the adapter is at
// the top of FuseSession.swift).
import CFuse3
import Glibc
import Logging
import OBSProtocol
import ObsFS
import Synchronization

// MARK: Callbacks (C function pointers: no captures; state comes from the userdata)

let fuseOperations: fuse_lowlevel_ops = {
    var ops = fuse_lowlevel_ops()

    ops.`init` = { userdata, connection in
        guard let userdata, let connection else { return }
        let dispatcher = Unmanaged<Dispatcher>.fromOpaque(userdata).takeUnretainedValue()
        // libfuse 3 always allows big writes (FUSE_CAP_BIG_WRITES is gone) and asks the kernel for
        // max_pages = max_write / page size itself; the kernel caps that at its own limit.
        connection.pointee.max_write = requestedMaxWrite
        if connection.pointee.capable & UInt32(FUSE_CAP_ATOMIC_O_TRUNC) != 0 {
            connection.pointee.want |= UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
        }
        // writeback_cache: the kernel gathers writes in its page cache and sends them in batches
        // (mount-options/write-semantics.md); otherwise writes go straight to part buffers.
        let writeback = UInt32(FUSE_CAP_WRITEBACK_CACHE)
        if dispatcher.fileSystem.configuration.writebackCache && connection.pointee.capable & writeback != 0 {
            connection.pointee.want |= writeback
        } else {
            if dispatcher.fileSystem.configuration.writebackCache { dispatcher.logger.warning("writeback_cache: the kernel does not offer it; writes are not cached") }
            connection.pointee.want &= ~writeback
        }
        // readdirplus: listings hand the kernel the attributes the inode table holds.
        if connection.pointee.capable & UInt32(FUSE_CAP_READDIRPLUS) != 0 {
            connection.pointee.want |= UInt32(FUSE_CAP_READDIRPLUS) | UInt32(FUSE_CAP_READDIRPLUS_AUTO)
        }
        dispatcher.logger.info("FUSE protocol \(connection.pointee.proto_major).\(connection.pointee.proto_minor): max_write \(connection.pointee.max_write) bytes requested (the size of each write delivered is logged per file)")
    }

    ops.lookup = { request, parent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        // Names the table and caches know are answered here; the others in a task.
        do {
            if let known = try dispatcher.fileSystem.cachedLookup(parent: InodeNumber(parent), name: childName) {
                return dispatcher.replyEntry(Request(raw: request, isLookup: true), known)
            }
        } catch {
            return dispatcher.fail(Request(raw: request, isLookup: true), error)
        }
        dispatcher.answerEntry(request, isLookup: true) { try await dispatcher.fileSystem.lookup(parent: InodeNumber(parent), name: childName) }
    }

    ops.forget = { request, inode, count in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.fileSystem.forget(InodeNumber(inode), count: count)
        dispatcher.replies.none(Request(raw: request))
    }

    ops.getattr = { request, inode, _ in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        // Fresh attributes are answered here; a refresh from the store in a task.
        do {
            if let known = try dispatcher.fileSystem.cachedAttributes(InodeNumber(inode)) {
                return dispatcher.replies.attributes(Request(raw: request), dispatcher.stat(known), timeout: dispatcher.cacheSeconds)
            }
        } catch {
            return dispatcher.fail(Request(raw: request), error)
        }
        dispatcher.answerAttributes(request) { try await dispatcher.fileSystem.getattr(InodeNumber(inode)) }
    }

    ops.setattr = { request, inode, attributes, toSet, info in
        guard let request, let attributes else { return }
        let dispatcher = Dispatcher.from(request)
        // writeback_cache: the kernel's own mtime and ctime of a file it writes, sent with the handle.
        let kernelTimes = FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_CTIME
        if toSet & ~kernelTimes == 0, toSet & FUSE_SET_ATTR_CTIME != 0, let info,
           let shown = dispatcher.fileSystem.timesOfCachedWrites(InodeNumber(inode), handle: FileHandleID(info.pointee.fh)) {
            return dispatcher.replies.attributes(Request(raw: request), dispatcher.stat(shown), timeout: dispatcher.cacheSeconds)
        }
        let given = attributes.pointee
        func time(_ set: Int32, _ now: Int32, _ value: Glibc.timespec) -> FileTime? {
            toSet & now != 0 ? .now() : toSet & set != 0 ? Dispatcher.fileTime(value) : nil
        }
        var changes = AttributeChanges(
            size: toSet & FUSE_SET_ATTR_SIZE != 0 ? Int64(given.st_size) : nil,
            permissions: toSet & FUSE_SET_ATTR_MODE != 0 ? given.st_mode & 0o7777 : nil,
            uid: toSet & FUSE_SET_ATTR_UID != 0 ? given.st_uid : nil,
            gid: toSet & FUSE_SET_ATTR_GID != 0 ? given.st_gid : nil,
            accessed: time(FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_ATIME_NOW, given.st_atim),
            modified: time(FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_MTIME_NOW, given.st_mtim))
        // chown(f, -1, -1): nothing but the ctime (which the kernel names only with
        // writeback_cache) and its set-ID flags, which a chown that changes no owner does not act on.
        let killFlags = FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID | FUSE_SET_ATTR_KILL_PRIV
        changes.changeTimeOnly = toSet & ~(killFlags | FUSE_SET_ATTR_CTIME) == 0
        let caller = Dispatcher.caller(request), asked = changes
        dispatcher.answerAttributes(request) { try await dispatcher.fileSystem.setattr(InodeNumber(inode), asked, by: caller) }
    }

    ops.create = { request, parent, namePointer, mode, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        let caller = Dispatcher.caller(request)
        let template = info.pointee  // libfuse's copy lives on its stack; reply with ours
        dispatcher.answer(request) { request in
            var caller = caller
            caller.process = ProcessFiles.threadGroup(of: caller.process)
            await dispatcher.replyCreate(request, parent: InodeNumber(parent), name: childName, mode: mode, caller: caller, template: template)
        }
    }

    ops.open = { request, inode, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let template = info.pointee
        let flags = template.flags
        let caller = Dispatcher.caller(request)
        dispatcher.answer(request) { request in
            dispatcher.applyKernelReadAhead()
            var reply = template
            do {
                let opener = ProcessFiles.threadGroup(of: caller.process)
                let opened = try await dispatcher.fileSystem.open(InodeNumber(inode), flags: flags, opener: opener, by: caller)
                reply.fh = opened.handle.rawValue
                reply.direct_io = opened.directIO ? 1 : 0
                reply.keep_cache = opened.keepCache ? 1 : 0
                if opened.changedAttributes { dispatcher.replies.attributesChanged(InodeNumber(inode)) }
                if !dispatcher.replies.open(request, reply) { await dispatcher.fileSystem.release(opened.handle) }
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.write = { request, inode, buffer, size, offset, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        let writer = WriterIdentity(info.pointee.lock_owner)
        let caller = Dispatcher.caller(request)
        let dropsSetID = dispatcher.fileSystem.writeDropsSetIDBits(handle, caller: caller)
        // O_DSYNC (and O_SYNC, which includes it): the write returns once stored as `fsync` stores.
        let synchronous = info.pointee.flags & O_DSYNC != 0
        // The kernel's bytes are valid only now: admit copies them into part buffers (or aside).
        let admission = dispatcher.fileSystem.write(handle, at: Int64(offset), bytes: UnsafeRawBufferPointer(start: buffer, count: size), writer: writer,
                                                    process: caller.process, appending: info.pointee.flags & O_APPEND != 0)
        switch admission {
        // Answered here, on the callback's thread: no task for the common case.
        case .accepted(let count) where !dropsSetID && !synchronous: dispatcher.replies.written(Request(raw: request), count: count)
        case .refused(let error): dispatcher.fail(Request(raw: request), error)
        default:
            dispatcher.answer(request) { request in
                // A write by a caller other than root drops set-ID bits before it is answered.
                if dropsSetID {
                    do {
                        try await dispatcher.fileSystem.dropSetIDBits(writingThrough: handle, caller: caller)
                        dispatcher.replies.attributesChanged(InodeNumber(inode))
                    } catch {
                        dispatcher.logger.error("write to \(InodeNumber(inode)) by uid \(caller.uid): its set-ID bits could not be dropped: \(error)")
                    }
                }
                let written: Result<Int, FileSystemError>
                switch admission {
                case .accepted(let count): written = .success(count)
                case .refused(let error): written = .failure(error)
                case .waiting(let pending):
                    // An interrupt withdraws the write from its queue: EINTR (or short) at once.
                    written = await dispatcher.interruptibly(request, onInterrupt: { pending.cancel() }, { await pending.outcome })
                }
                switch written {
                case .success(let count):
                    do {
                        if synchronous { try await dispatcher.stoppable(request, doing: "O_DSYNC write") { try await dispatcher.fileSystem.fsync(handle) } }
                        dispatcher.replies.written(request, count: count)
                    } catch {
                        dispatcher.fail(request, error)
                    }
                case .failure(let error): dispatcher.fail(request, error)
                }
            }
        }
    }

    ops.read = { request, _, size, offset, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            do {
                let bytes = try await dispatcher.stoppable(request, doing: "read of \(size) bytes at \(offset)") {
                    try await dispatcher.fileSystem.read(handle, at: Int64(offset), count: size)
                }
                bytes.withPieces { dispatcher.replies.gathered(request, $0) }
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.flush = { request, inode, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        // A read-only descriptor's close has nothing to store: answered here.
        if dispatcher.fileSystem.isReadOnly(handle) { return dispatcher.replies.error(Request(raw: request), 0) }
        let writer = WriterIdentity(info.pointee.lock_owner)
        let thread = Dispatcher.caller(request).process
        dispatcher.answer(request) { request in
            await dispatcher.replyStatus(request) {
                do {
                    try await dispatcher.stoppable(request, doing: "flush") {
                        let process = ProcessFiles.threadGroup(of: thread)
                        let mount = dispatcher.mount.withLock { $0 }
                        let heldElsewhere = mount.map { ProcessFiles.holdsWritable(process: process, inode: InodeNumber(inode), mount: $0) } ?? false
                        try await dispatcher.fileSystem.flush(handle, writer: writer, process: process, stillHeldWritable: heldElsewhere) {
                            mount.map { ProcessFiles.anyProcessHoldsWritable(inode: InodeNumber(inode), mount: $0) } ?? true
                        }
                    }
                } catch {
                    // Nothing (or not this) was stored: the kernel drops the attributes it holds
                    // and asks again (the core does too).
                    dispatcher.replies.attributesChanged(InodeNumber(inode))
                    throw error
                }
            }
        }
    }

    ops.fsync = { request, _, _, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            await dispatcher.replyStatus(request) { try await dispatcher.stoppable(request, doing: "fsync") { try await dispatcher.fileSystem.fsync(handle) } }
        }
    }

    ops.fallocate = { request, inode, mode, offset, length, _ in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.answer(request) { request in
            await dispatcher.replyStatus(request) {
                try await dispatcher.fileSystem.allocate(InodeNumber(inode), offset: Int64(offset), length: Int64(length), mode: mode)
            }
        }
    }

    ops.release = { request, _, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = FileHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            await dispatcher.fileSystem.release(handle)
            dispatcher.replies.error(request, 0)
        }
    }

    ops.unlink = { request, parent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        let mount = dispatcher.mount.withLock { $0 }
        dispatcher.answerStatus(request, naming: namePointer) {
            try await dispatcher.fileSystem.unlink(parent: InodeNumber(parent), name: $0) { inode in
                mount.map { ProcessFiles.anyProcessHoldsWritable(inode: inode, mount: $0) } ?? false
            }
        }
    }

    ops.mkdir = { request, parent, namePointer, mode in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        let caller = Dispatcher.caller(request)
        dispatcher.answerEntry(request) {
            try await dispatcher.fileSystem.mkdir(parent: InodeNumber(parent), name: childName, mode: mode, caller: caller)
        }
    }

    ops.rmdir = { request, parent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.answerStatus(request, naming: namePointer) { try await dispatcher.fileSystem.rmdir(parent: InodeNumber(parent), name: $0) }
    }

    ops.symlink = { request, targetPointer, parent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        guard let target = dispatcher.utf8Name(targetPointer, answering: request) else { return }
        let caller = Dispatcher.caller(request)
        dispatcher.answerEntry(request) {
            try await dispatcher.fileSystem.symlink(parent: InodeNumber(parent), name: childName, target: target, caller: caller)
        }
    }

    ops.readlink = { request, inode in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.answer(request) { request in
            do {
                let target = try await dispatcher.fileSystem.readlink(InodeNumber(inode))
                dispatcher.replies.symlinkTarget(request, target)
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.mknod = { request, parent, namePointer, mode, device in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        let caller = Dispatcher.caller(request)
        dispatcher.answerEntry(request) {
            try await dispatcher.fileSystem.mknod(parent: InodeNumber(parent), name: childName, mode: mode, device: UInt64(device), caller: caller)
        }
    }

    ops.link = { request, inode, newParent, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        dispatcher.answerEntry(request) {
            try dispatcher.fileSystem.link(InodeNumber(inode), parent: InodeNumber(newParent), name: childName)
        }
    }

    ops.rename = { request, parent, namePointer, newParent, newNamePointer, flags in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let childName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        guard let newName = dispatcher.utf8Name(newNamePointer, answering: request) else { return }
        dispatcher.answer(request) { request in
            do {
                try await dispatcher.fileSystem.rename(parent: InodeNumber(parent), name: childName, newParent: InodeNumber(newParent),
                                                       newName: newName, flags: UInt32(flags))
                dispatcher.replies.error(request, 0)
            } catch {
                dispatcher.fail(request, error)
                // A rename that made part of its target: the kernel's missing entry of the new
                // name (`mv` looked it up first) would hide it from the rename run again to
                // complete it, for negative_timeout=.
                if error is PartialRenameError { dispatcher.replies.entryChanged(newName, in: InodeNumber(newParent)) }
            }
        }
    }

    ops.opendir = { request, inode, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let template = info.pointee
        dispatcher.answer(request) { request in
            var reply = template
            do {
                reply.fh = try dispatcher.fileSystem.openDirectory(InodeNumber(inode)).rawValue
                if !dispatcher.replies.open(request, reply) { dispatcher.fileSystem.releaseDirectory(DirectoryHandleID(reply.fh)) }
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.readdir = { request, directory, size, offset, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = DirectoryHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            await dispatcher.replyDirectory(request, handle, InodeNumber(directory), size: size, offset: offset, plus: false)
        }
    }

    ops.readdirplus = { request, directory, size, offset, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = DirectoryHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            await dispatcher.replyDirectory(request, handle, InodeNumber(directory), size: size, offset: offset, plus: true)
        }
    }

    ops.releasedir = { request, _, info in
        guard let request, let info else { return }
        let dispatcher = Dispatcher.from(request)
        let handle = DirectoryHandleID(info.pointee.fh)
        dispatcher.answer(request) { request in
            dispatcher.fileSystem.releaseDirectory(handle)
            dispatcher.replies.error(request, 0)
        }
    }

    ops.statfs = { request, _ in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.answer(request) { request in
            let numbers = dispatcher.fileSystem.statistics()
            var result = statvfs()
            result.f_bsize = UInt(numbers.blockSize)
            result.f_frsize = UInt(numbers.blockSize)
            result.f_blocks = UInt(numbers.totalBlocks)
            result.f_bfree = UInt(numbers.freeBlocks)
            result.f_bavail = UInt(numbers.freeBlocks)
            result.f_files = UInt(numbers.totalFiles)
            result.f_ffree = UInt(numbers.freeFiles)
            result.f_favail = UInt(numbers.freeFiles)
            result.f_namemax = UInt(numbers.maximumNameLength)
            dispatcher.replies.statistics(request, result)
        }
    }

    ops.getxattr = { request, inode, namePointer, size in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let attributeName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        // Answered here (no store involved): writeback_cache asks security.capability per write.
        if let refusal = ObsFileSystem.unkeptAttributeName(attributeName) { return dispatcher.fail(Request(raw: request), refusal) }
        dispatcher.answer(request) { request in
            do {
                dispatcher.replyXattr(request, try await dispatcher.fileSystem.getxattr(InodeNumber(inode), name: attributeName), size: size)
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.listxattr = { request, inode, size in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        dispatcher.answer(request) { request in
            do {
                let names = try await dispatcher.fileSystem.listxattr(InodeNumber(inode))
                dispatcher.replyXattr(request, names.flatMap { Array($0.utf8) + [0] }, size: size)
            } catch {
                dispatcher.fail(request, error)
            }
        }
    }

    ops.setxattr = { request, inode, namePointer, valuePointer, size, flags in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let attributeName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        // The value is valid only during the callback.
        let value = valuePointer.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
        dispatcher.answerStatus(request) { try await dispatcher.fileSystem.setxattr(InodeNumber(inode), name: attributeName, value: value, flags: flags) }
    }

    ops.removexattr = { request, inode, namePointer in
        guard let request else { return }
        let dispatcher = Dispatcher.from(request)
        guard let attributeName = dispatcher.utf8Name(namePointer, answering: request) else { return }
        dispatcher.answerStatus(request) { try await dispatcher.fileSystem.removexattr(InodeNumber(inode), name: attributeName) }
    }

    return ops
}()
