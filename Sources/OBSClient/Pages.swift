// Following a paged listing (objects, parts, uploads) to its end.

/// The pages of a listing, fetched one at a time as the sequence is iterated; each fetch
/// continues from the marker the previous page ended at.
public struct Pages<Page: Sendable, Marker: Sendable>: AsyncSequence, Sendable {
    public typealias Element = Page
    public typealias Failure = OBSClientError
    /// Fetches the page after `marker` (nil: the first page) and tells where the next one
    /// starts (nil: this was the last page).
    typealias Fetch = @Sendable (Marker?) async throws(OBSClientError) -> (page: Page, next: Marker?)

    let start: Marker?
    let fetch: Fetch

    init(start: Marker?, fetch: @escaping Fetch) {
        self.start = start
        self.fetch = fetch
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var marker: Marker?
        var finished = false
        let fetch: Fetch

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(OBSClientError) -> Page? {
            guard !finished else { return nil }
            let (page, next) = try await fetch(marker)
            marker = next
            finished = next == nil
            return page
        }

        public mutating func next() async throws(OBSClientError) -> Page? {
            try await next(isolation: nil)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(marker: start, fetch: fetch) }

    /// Every page, in order.
    public func collect() async throws(OBSClientError) -> [Page] {
        var pages: [Page] = []
        var iterator = makeAsyncIterator()
        while let page = try await iterator.next() { pages.append(page) }
        return pages
    }
}
