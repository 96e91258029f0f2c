// Part assembly: how one file's writes become parts. A pure value type (no locks, no tasks, no
// I/O) that the session keeps inside its state lock: it copies the bytes of each write into the
// part buffer being filled, zero-fills forward gaps, refuses writes before the part not yet sent
// (ESPIPE: random writes are not supported), and seals a part when its buffer is full or the file
// is completed. It only copies: the proof of a part's bytes (MD5 or CRC) is computed after
// sealing, outside the lock (UploadIntegrity.swift, UploadWindow.swift).
import OBSProtocol

/// A part whose bytes are all in `buffer[0..<size]`, ready to upload.
struct SealedPart {
    let number: PartNumber
    let buffer: AlignedMemory
    let size: Int
}

/// The parts of one file as its writes arrive.
struct PartAssembly {
    /// The part buffer being filled.
    private struct FillingPart {
        let number: PartNumber
        /// File offset of the part's first byte.
        let start: Int64
        let buffer: AlignedMemory
        var filled = 0
        var capacity: Int { buffer.rawBytes.count }
    }

    let schedule: PartSizeSchedule
    /// Highest end offset written: the file's size. Invariant: `size == filling.start + filling.filled`
    /// while a part is filling, else `size == nextPartStart`.
    private(set) var size: Int64 = 0
    private var filling: FillingPart?
    /// The number of the next part to start; nil when the schedule's last part is sealed.
    private(set) var nextPartNumber: PartNumber? = .first
    private var nextPartStart: Int64 = 0

    init(schedule: PartSizeSchedule) { self.schedule = schedule }

    /// The result of `apply`.
    enum Applied {
        case done
        /// `count` bytes were applied; the rest needs a part buffer (`buffer(for:)` had none).
        case needsBuffer(Int)
        case failed(FileSystemError)
    }

    /// True once a part was sealed (the upload's options are then fixed).
    var sealedAnyPart: Bool { nextPartNumber != .first }

    /// The size of the buffer the next part needs, when one must be started.
    var wantedBufferSize: Int64? {
        guard filling == nil, let number = nextPartNumber else { return nil }
        return schedule.size(of: number)
    }

    /// Copies `bytes` (written at `offset`) into part buffers. A new part takes its buffer from
    /// `buffer(size)` (nil: none free now); each full part goes to `sealed`.
    /// Where the bytes not yet handed to the window start: writes before it cannot be taken.
    var unsentStart: Int64 { filling?.start ?? nextPartStart }

    mutating func apply(offset: Int64, bytes: UnsafeRawBufferPointer, buffer: (Int64) -> AlignedMemory?,
                        sealed: (SealedPart) -> Void) -> Applied {
        let unsentStart = self.unsentStart
        guard offset >= unsentStart else {
            return .failed(FileSystemError(.illegalSeek, "write at offset \(offset), but the bytes before \(unsentStart) are already uploaded (random writes are not supported)"))
        }
        var position = offset
        var index = 0
        while index < bytes.count || size < position {
            if filling == nil {
                guard let number = nextPartNumber else {
                    return .failed(FileSystemError(.fileTooBig, "the file would exceed this mount's largest object, \(schedule.reach) bytes in \(PartNumber.range.upperBound) parts"))
                }
                guard let fresh = buffer(schedule.size(of: number)) else { return .needsBuffer(index) }
                filling = FillingPart(number: number, start: nextPartStart, buffer: fresh)
            }
            var part = filling!
            let local = Int(position - part.start)
            if part.filled < local {
                // A forward gap: zeros up to the write, or to the end of this part.
                let gapEnd = min(local, part.capacity)
                UnsafeMutableRawBufferPointer(rebasing: part.buffer.rawBytes[part.filled..<gapEnd]).initializeMemory(as: UInt8.self, repeating: 0)
                part.filled = gapEnd
            } else {
                let count = min(bytes.count - index, part.capacity - local)
                UnsafeMutableRawBufferPointer(rebasing: part.buffer.rawBytes[local..<(local + count)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + count)]))
                part.filled = max(part.filled, local + count)
                index += count
                position += Int64(count)
            }
            size = part.start + Int64(part.filled)
            filling = part
            if part.filled == part.capacity, let full = seal() { sealed(full) }
        }
        return .done
    }

    /// Starts the next part in `buffer` (awaited outside the lock); false, changing nothing, when
    /// a part is already filling or the next part needs another size (the caller gives it back).
    mutating func start(in buffer: AlignedMemory, ofSize size: Int64) -> Bool {
        guard let number = nextPartNumber, wantedBufferSize == size else { return false }
        filling = FillingPart(number: number, start: nextPartStart, buffer: buffer)
        return true
    }

    /// Seals the filling part when it holds bytes. A filling part without bytes stays (its buffer
    /// is given back by `dropFilling`).
    mutating func seal() -> SealedPart? {
        guard let part = filling, part.filled > 0 else { return nil }
        filling = nil
        nextPartStart = part.start + Int64(part.filled)
        nextPartNumber = part.number.next
        return SealedPart(number: part.number, buffer: part.buffer, size: part.filled)
    }

    /// Removes the filling part, if any, and returns its buffer (failure, or an empty last part).
    mutating func dropFilling() -> AlignedMemory? {
        defer { filling = nil }
        return filling?.buffer
    }
}
