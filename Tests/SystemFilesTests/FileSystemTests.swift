// The checked file calls: errors carry the call, the path and the errno; a replacement leaves
// the old content or the new one, with the mode asked for.
import SystemFiles
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct FileSystemTests {
    private func temporaryDirectory() throws -> String {
        var template = Array("/tmp/systemfiles-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw StorageIOError(operation: "mkdtemp", path: "/tmp", errno: errno) }
        return String(cString: made)
    }

    @Test func aFailedCallNamesItsOperationPathAndErrno() throws {
        let missing = "/nonexistent-\(getpid())/file"
        #expect {
            _ = try FileSystem.open(missing, O_RDONLY)
        } throws: { error in
            guard let failure = error as? StorageIOError else { return false }
            return failure.operation == "open" && failure.path == missing && failure.errno == ENOENT
                && failure.description.contains("No such file")
        }
    }

    @Test func makeDirectoriesGivesEveryNewDirectoryTheMode() throws {
        let root = try temporaryDirectory()
        defer { FileSystem.removeDirectory(root + "/a/b"); FileSystem.removeDirectory(root + "/a"); rmdir(root) }
        let saved = umask(0)
        defer { umask(saved) }
        try FileSystem.makeDirectories(root + "/a/b", mode: 0o700)
        try FileSystem.makeDirectories(root + "/a/b", mode: 0o700)  // existing: no error
        for path in [root + "/a", root + "/a/b"] {
            var info = stat()
            #expect(stat(path, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o700)
        }
    }

    @Test func aCommittedReplacementReplacesWholeAndAnAbandonedOneLeavesTheOld() throws {
        let root = try temporaryDirectory()
        let path = root + "/file"
        defer { FileSystem.removeDirectory(root) }
        let saved = umask(0)
        defer { umask(saved) }

        let first = try FileSystem.Replacement(of: path, temporarySuffix: ".one", mode: 0o600)
        try first.write(Array("old".utf8))
        try FileSystem.close(try first.commit(synchronizing: false), path: path)
        #expect(try FileSystem.readFile(path) == Array("old".utf8))
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)

        let abandoned = try FileSystem.Replacement(of: path, temporarySuffix: ".two")
        try abandoned.write(Array("new, never committed".utf8))
        abandoned.abandon()
        #expect(try FileSystem.readFile(path) == Array("old".utf8))
        #expect(FileSystem.list(root) == ["file"])

        let second = try FileSystem.Replacement(of: path)
        try second.write(Array("new".utf8))
        let descriptor = try second.commit()
        // The descriptor handed over appends to the file now in place.
        try Array("+more".utf8).withUnsafeBytes { try FileSystem.writeAll(descriptor, $0, path: path) }
        try FileSystem.close(descriptor, path: path)
        #expect(try FileSystem.readFile(path) == Array("new+more".utf8))
        #expect(FileSystem.list(root) == ["file"])
    }
}
