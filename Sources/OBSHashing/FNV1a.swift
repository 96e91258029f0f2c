// FNV-1a, 64 bits: a fast, fixed hash of short texts (not for integrity, not keyed). Used where a
// value must come out the same in every process and every run: a mountpoint's control socket
// name, a path's inode number.

/// FNV-1a over the UTF-8 bytes of a text.
public enum FNV1a {
    public static func hash(_ text: String) -> UInt64 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01b3
        }
        return value
    }
}
