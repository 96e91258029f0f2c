// A bucket's objects by key, with the keys also kept sorted by their UTF-8 bytes (the order
// listings use), so a listing page is a binary search and a walk of the page's keys, not a filter
// and sort of the whole bucket under the store lock. A sorted array: lookups go through the
// dictionary, a new or removed key moves the array's tail (a memmove, cheap at the sizes a local
// server holds), and a page under a delimiter skips each common prefix with one more search.
// (swift-collections' sorted containers are still behind an unstable package trait.)

extension StoredKey: Comparable {
    static func < (lhs: StoredKey, rhs: StoredKey) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }
}

/// The objects of one bucket, by key and in key order.
struct ObjectIndex: Sendable {
    private var records: [StoredKey: ObjectRecord] = [:]
    /// Every key of `records`, ascending.
    private var sortedKeys: [StoredKey] = []

    init() {}

    var isEmpty: Bool { records.isEmpty }
    var count: Int { records.count }
    var values: Dictionary<StoredKey, ObjectRecord>.Values { records.values }
    var keys: Dictionary<StoredKey, ObjectRecord>.Keys { records.keys }

    subscript(key: StoredKey) -> ObjectRecord? {
        get { records[key] }
        set {
            if let newValue {
                updateValue(newValue, forKey: key)
            } else {
                removeValue(forKey: key)
            }
        }
    }

    @discardableResult
    mutating func updateValue(_ record: ObjectRecord, forKey key: StoredKey) -> ObjectRecord? {
        let old = records.updateValue(record, forKey: key)
        if old == nil { sortedKeys.insert(key, at: firstIndex { !($0 < key) }) }
        return old
    }

    @discardableResult
    mutating func removeValue(forKey key: StoredKey) -> ObjectRecord? {
        guard let old = records.removeValue(forKey: key) else { return nil }
        sortedKeys.remove(at: firstIndex { !($0 < key) })
        return old
    }

    /// Walks the keys that start with `prefix` and come after `marker`, in order, handing each
    /// record to `visit`; `visit` answers where to go on: `.next`, `.skip(past: group)` (to the
    /// first key that does not start with `group`), or `.stop`.
    func walk(prefix: [UInt8], after marker: [UInt8]?, _ visit: (ObjectRecord) -> WalkStep) {
        var index = firstIndex { !$0.bytes.lexicographicallyPrecedes(prefix) }
        if let marker { index = max(index, firstIndex { marker.lexicographicallyPrecedes($0.bytes) }) }
        while index < sortedKeys.count, sortedKeys[index].bytes.starts(with: prefix) {
            switch visit(records[sortedKeys[index]]!) {
            case .next:
                index += 1
            case .skip(let group):
                index = max(index + 1, firstIndex { !$0.bytes.lexicographicallyPrecedes(group) && !$0.bytes.starts(with: group) })
            case .stop:
                return
            }
        }
    }

    enum WalkStep {
        case next
        /// Past every key that starts with these bytes.
        case skip(past: [UInt8])
        case stop
    }

    /// The first index whose key satisfies `isAtOrAfter` (a predicate false then true along the keys).
    private func firstIndex(where isAtOrAfter: (StoredKey) -> Bool) -> Int {
        var low = 0, high = sortedKeys.count
        while low < high {
            let middle = (low + high) / 2
            if isAtOrAfter(sortedKeys[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
