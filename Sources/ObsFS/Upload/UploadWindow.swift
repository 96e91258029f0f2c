// The upload window: the parts of one upload between sealing and the store's receipt. At most
// `parallel` parts are in flight, each in a task the window owns, so that a failure or an unmount
// cancels the parts in flight instead of waiting for them (their tasks still report, then the
// session aborts); the other sealed parts wait in part order, holding their buffers. Kept inside
// the session's state lock; a part's task computes the part's proof (MD5 or CRC) and sends it
// outside that lock.
import OBSClient
import OBSProtocol

struct UploadWindow {
    /// Part uploads in flight at most.
    let parallel: Int
    /// Sealed parts waiting for a slot, in part order.
    private var waiting: [SealedPart] = []
    /// The task of each part in flight.
    private var running: [PartNumber: Task<Void, Never>] = [:]
    /// The receipts of the parts the store accepted.
    private var receipts: [PartNumber: PartReceipt] = [:]
    /// While paused (a re-initiation is replacing the upload), sealed parts wait.
    var paused = false

    init(parallel: Int) {
        precondition(parallel >= 1)
        self.parallel = parallel
    }

    /// Nothing waiting and nothing in flight.
    var isIdle: Bool { running.isEmpty && waiting.isEmpty }

    /// The accepted parts in part order.
    var acceptedParts: [PartReceipt] { receipts.values.sorted { $0.number < $1.number } }

    /// Queues a sealed part and starts what the window allows.
    mutating func add(_ part: SealedPart, launch: (SealedPart) -> Task<Void, Never>) {
        waiting.append(part)
        fill(launch: launch)
    }

    /// Starts waiting parts while slots are free, unless paused. `launch` only creates the task:
    /// the task reports through the session's lock, which the caller holds until it is recorded.
    mutating func fill(launch: (SealedPart) -> Task<Void, Never>) {
        while !paused, running.count < parallel, !waiting.isEmpty {
            let part = waiting.removeFirst()
            running[part.number] = launch(part)
        }
    }

    /// Part `number`'s task ended: with its receipt, or nil when it failed.
    mutating func finished(_ number: PartNumber, receipt: PartReceipt?) {
        running[number] = nil
        if let receipt { receipts[number] = receipt }
    }

    /// Failure or unmount: cancels the parts in flight (each still reports `finished`) and drops
    /// the waiting ones; returns their buffers.
    mutating func cancel() -> [AlignedMemory] {
        for task in running.values { task.cancel() }
        defer { waiting = [] }
        return waiting.map(\.buffer)
    }
}
