import OBSProtocol
import Testing
@testable import ObsFS

struct MountOptionsTests {
    @Test func parsesEveryOption() throws {
        let options = try MountOptions(parsing: [
            "url=http://127.0.0.1:9000,passwd_file=/etc/passwd-obs,dialect=v4,region=cn-north-4",
            "part_size=5M,parallel=8,memory_budget=1G,allow_other,ro,uid=12,gid=34,umask=027,addressing=virtual,cafile=/ca.pem,log_file=/var/log/obsmount.log",
            "data_dir=/srv/obs,allow_over_mount",
        ])
        #expect(options.endpoint == "http://127.0.0.1:9000")
        #expect(options.passwordFile == "/etc/passwd-obs")
        #expect(options.dialect == .v4)
        #expect(options.region == "cn-north-4")
        #expect(options.partSize == 5 << 20)
        #expect(options.parallel == 8)
        #expect(options.memoryBudget == 1 << 30)
        #expect(options.allowOther == true && options.readOnly && options.virtualHostAddressing)
        #expect(options.uid == 12 && options.gid == 34 && options.umask == 0o027)
        #expect(options.caFile == "/ca.pem")
        #expect(options.logFile == "/var/log/obsmount.log")
        #expect(options.dataDirectory == "/srv/obs" && options.allowOverMount)
    }

    @Test func defaults() throws {
        let options = try MountOptions(parsing: [])
        #expect(options.endpoint == nil && options.dialect == .obs && options.partSize == 8 << 20 && options.parallel == 4)
        #expect(options.dataDirectory == nil && !options.allowOverMount)
        // Decided at mount: on for root, off for other users.
        #expect(options.allowOther == nil)
        #expect(try MountOptions(parsing: ["allow_other,noallow_other"]).allowOther == false)
    }

    @Test(arguments: [
        ("bogus", "bogus"), ("part_size=1K", "part_size=1K"), ("part_size=6G", "part_size=6G"), ("part_size=abc", "part_size=abc"),
        ("parallel=0", "parallel=0"), ("dialect=v3", "dialect=v3"), ("url=ftp://x", "url=ftp://x"), ("umask=999", "umask=999"),
        ("uid=-1", "uid=-1"), ("ro=1", "ro=1"), ("region=", "region="), ("memory_budget=10K", "memory_budget=10K"),
        ("allow_over_mount=yes", "allow_over_mount=yes"), ("data_dir=", "data_dir="),
    ])
    func rejectsBadOptionsNamingThem(list: String, named: String) {
        #expect(throws: MountOptionError.self) { try MountOptions(parsing: [list]) }
        do {
            _ = try MountOptions(parsing: ["parallel=2,\(list)"])
        } catch {
            #expect(error.option == named)
            #expect(error.description.contains("'\(named)'"))
        }
    }

    @Test func uploadOptionsAreDelegatedAndCommasEscaped() throws {
        let options = try MountOptions(parsing: [#"part_size=5M,acl=public-read,meta.note=a\,b"#])
        #expect(options.partSize == 5 << 20)
        #expect(options.upload.defaults.acl == .publicRead)
        #expect(options.upload.defaults.metadata == ["note": "a,b"])
        #expect(throws: MountOptionError.self) { try MountOptions(parsing: ["storage_class=ICE"]) }
    }

    @Test func optionsMountAndFstabAddAreIgnoredOrHandedToTheKernel() throws {
        let options = try MountOptions(parsing: ["rw,nodev,nosuid,noexec,noatime,_netdev,defaults,auto,nouser,nofail,x-systemd.automount,x-systemd.idle-timeout=60,comment=backup"])
        #expect(options.kernelFlags == ["nodev", "nosuid", "noexec", "noatime"])
        #expect(!options.readOnly)
        #expect(options.upload.defaults == MountOptions().upload.defaults)
        #expect(throws: MountOptionError.self) { try MountOptions(parsing: ["nodev=1"]) }
    }

    @Test func metricsEndpointIsLoopbackOrUnixSocket() throws {
        #expect(try MountOptions(parsing: ["metrics=127.0.0.1:9464"]).metrics == .loopback(host: "127.0.0.1", port: 9464))
        #expect(try MountOptions(parsing: ["metrics=localhost:0"]).metrics == .loopback(host: "127.0.0.1", port: 0))
        #expect(try MountOptions(parsing: ["metrics=[::1]:9464"]).metrics == .loopback(host: "::1", port: 9464))
        #expect(try MountOptions(parsing: ["metrics=unix:/run/obsmount/m.sock"]).metrics == .unixSocket(path: "/run/obsmount/m.sock"))
        #expect(try MountOptions(parsing: []).metrics == nil)
        for bad in ["metrics=0.0.0.0:9464", "metrics=10.0.0.1:80", "metrics=127.0.0.1", "metrics=unix:relative", "metrics=127.0.0.1:99999"] {
            #expect(throws: MountOptionError.self) { try MountOptions(parsing: [bad]) }
        }
    }

    @Test(arguments: [Dialect.v2, .v4])
    func s3DialectsNeedFiveMebibyteParts(dialect: Dialect) throws {
        // The check runs once every option is known: the order of part_size= and dialect= does not matter.
        for list in ["part_size=1M,dialect=\(dialect)", "dialect=\(dialect),part_size=5242879"] {
            do {
                _ = try MountOptions(parsing: [list])
                Issue.record("\(list) was accepted")
            } catch {
                #expect(error.option.hasPrefix("part_size="))
                #expect(error.reason.contains("at least 5120K with dialect=\(dialect)"))
            }
        }
        #expect(try MountOptions(parsing: ["dialect=\(dialect),part_size=5M"]).partSize == 5 << 20)
        #expect(try MountOptions(parsing: ["dialect=\(dialect)"]).partSize == 8 << 20)
    }

    @Test func obsDialectAllows100KiBParts() throws {
        #expect(try MountOptions(parsing: ["dialect=obs,part_size=100K"]).partSize == 100 << 10)
    }

    @Test func retryTimeoutIsADuration() throws {
        #expect(try MountOptions(parsing: []).retryTimeout == .seconds(60))
        for (text, duration) in [("90", Duration.seconds(90)), ("90s", .seconds(90)), ("500ms", .milliseconds(500)), ("2m", .seconds(120)),
                                 ("1h", .seconds(3600)), ("0", .zero)] {
            #expect(try MountOptions(parsing: ["retry_timeout=\(text)"]).retryTimeout == duration)
        }
        for bad in ["retry_timeout=", "retry_timeout=-1", "retry_timeout=5x", "retry_timeout=25h", "retry_timeout=s"] {
            #expect(throws: MountOptionError.self) { try MountOptions(parsing: [bad]) }
        }
    }

    @Test func stallTimeoutIsWholeSeconds() throws {
        #expect(try MountOptions(parsing: []).stallTimeout == .seconds(30))
        #expect(try MountOptions(parsing: ["stall_timeout=3"]).stallTimeout == .seconds(3))
        #expect(try MountOptions(parsing: ["stall_timeout=2m"]).stallTimeout == .seconds(120))
        for bad in ["stall_timeout=0", "stall_timeout=500ms", "stall_timeout=1500ms", "stall_timeout=2h", "stall_timeout="] {
            #expect(throws: MountOptionError.self) { try MountOptions(parsing: [bad]) }
        }
    }

    @Test func memoryBudgetMustHoldTwoParts() {
        #expect(throws: MountOptionError.self) { try MountOptions(parsing: ["part_size=64M,memory_budget=100M"]) }
    }

    @Test func mountSource() throws {
        #expect(try MountSource(parsing: "bucket") == MountSource(parsing: "bucket:/"))
        let source = try MountSource(parsing: "my-bucket:/a//b/")
        #expect(source.bucket == BucketName("my-bucket"))
        #expect(source.prefix == "a/b/")
        #expect(try MountSource(parsing: "bkt:dir").prefix == "dir/")
        #expect(throws: MountSourceError.self) { try MountSource(parsing: "Bad_Bucket") }
        #expect(throws: MountSourceError.self) { try MountSource(parsing: "ab") }
        #expect(throws: MountSourceError.self) { try MountSource(parsing: "bucket:/a/../b") }
    }
}
