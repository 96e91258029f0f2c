// The version and commit an executable was built from, for `--version`. The values come from
// BuildStamp.swift, which the BuildStamp plugin writes at build time (Plugins/BuildStamp).

public enum BuildInfo {
    /// The package version (the VERSION file).
    public static let version = stampedVersion
    /// The short commit hash, "-dirty" appended when the tree had changes; nil outside git.
    public static let commit: String? = stampedCommit.isEmpty ? nil : stampedCommit

    /// `0.1.0 (commit 1a2b3c4d5e6f)` or `0.1.0 (unknown commit)`.
    public static var versionLine: String {
        "\(version) (\(commit.map { "commit \($0)" } ?? "unknown commit"))"
    }
}
