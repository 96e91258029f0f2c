// swift-tools-version: 6.0
// obsmount: a FUSE filesystem that streams large files into Huawei Cloud OBS (or any
// S3-compatible store) as multipart uploads. Dependencies flow one way:
//   C shims -> OBSHashing -> OBSProtocol -> CurlTransport -> OBSClient -> ObsFS -> FuseAdapter -> obsmount
//   OBSProtocol -> OBSLocalServer -> obs-local
//   SystemFiles (POSIX file calls, EINTR retries) -> OBSLocalServer, ObsFS, FuseAdapter, obsmount
import PackageDescription

let package = Package(
    name: "obsmount",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "obsmount", targets: ["ObsMountCLI"]),
        .executable(name: "obs-local", targets: ["ObsLocalCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // The version and commit `--version` prints, stamped at build time by the BuildStamp plugin.
        .plugin(name: "BuildStamp", capability: .buildTool()),
        .target(name: "BuildInfo", plugins: ["BuildStamp"]),

        // C shims: only what Swift cannot import (variadic functions, configuration macros).
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CFuse3", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CISAL", pkgConfig: "libisal", providers: [.apt(["libisal-dev"])]),
        .systemLibrary(name: "CMalloc"),

        // Hashing: MD5, SHA-256, HMAC over OpenSSL; CRC-64/ECMA and CRC-32C over ISA-L.
        .target(name: "OBSHashing", dependencies: ["COpenSSL", "CISAL"]),
        // Wire protocol shared by client and server: typed values, headers, signing, XML, errors.
        .target(name: "OBSProtocol", dependencies: ["OBSHashing"]),
        // HTTP over the libcurl multi interface, one event thread for all transfers; bodies from and
        // into caller-owned memory (OBSProtocol.RawMemoryOwner).
        .target(name: "CurlTransport", dependencies: [
            "CCurl", "OBSProtocol",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // POSIX file calls with their errno checks and EINTR retries, in one place: descriptors,
        // directories, whole-file reads, atomic replacement.
        .target(name: "SystemFiles"),
        // The OBS client: operations, retries. Knows objects, never files.
        .target(name: "OBSClient", dependencies: [
            "OBSProtocol", "CurlTransport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The local OBS-compatible server.
        .target(name: "OBSLocalServer", dependencies: [
            "OBSProtocol", "SystemFiles",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "ObsLocalCLI", dependencies: [
            "OBSLocalServer", "BuildInfo",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Filesystem core: inodes, namespace, upload sessions, xattrs, options. No FUSE.
        .target(name: "ObsFS", dependencies: [
            "OBSProtocol", "OBSHashing", "OBSClient", "SystemFiles",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),
        // FUSE adapter: low-level libfuse API, replies sent from Swift tasks.
        .target(name: "FuseAdapter", dependencies: [
            "CFuse3", "ObsFS", "SystemFiles",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "ObsMountCLI", dependencies: [
            "FuseAdapter", "ObsFS", "OBSClient", "OBSHashing", "OBSLocalServer", "BuildInfo", "SystemFiles", "CMalloc",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "SystemFilesTests", dependencies: ["SystemFiles"]),
        .testTarget(name: "OBSHashingTests", dependencies: ["OBSHashing"], exclude: ["Fixtures"]),
        .testTarget(name: "OBSProtocolTests", dependencies: ["OBSProtocol", "OBSHashing"], exclude: ["Fixtures"]),
        .testTarget(name: "CurlTransportTests", dependencies: ["CurlTransport"]),
        .target(name: "LogCapture", dependencies: [.product(name: "Logging", package: "swift-log")], path: "Tests/LogCapture"),
        .testTarget(name: "OBSClientTests", dependencies: ["OBSClient", "OBSLocalServer", "LogCapture"]),
        .testTarget(name: "OBSLocalServerTests", dependencies: ["OBSLocalServer", "OBSClient"], exclude: ["Fixtures"]),
        .testTarget(name: "ObsFSTests", dependencies: ["ObsFS", "OBSClient", "OBSLocalServer", "LogCapture"]),
        .testTarget(name: "FuseAdapterTests", dependencies: ["FuseAdapter", "CFuse3", "ObsFS", "OBSClient", "OBSLocalServer"]),
    ],
    swiftLanguageModes: [.v6]
)
