// Following a paged listing (objects, parts, uploads) to its end.

/// The pages of a listing, fetched one at a time as the sequence is iterated; each fetch
/// continues from the marker the previous page ended at.
public struct Pages<Page: Sendable, Marker: Sendable>: AsyncSequence, Sendable {
    /// One listing page.
    public typealias Element = Page
    /// Fetching a page fails with the client's error.
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

    /// Fetches the pages in order, stopping after the last.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var marker: Marker?
        var finished = false
        let fetch: Fetch

        /// The next page, or nil after the last.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws(OBSClientError) -> Page? {
            guard !finished else { return nil }
            let (page, next) = try await fetch(marker)
            marker = next
            finished = next == nil
            return page
        }

        /// The next page, or nil after the last.
        public mutating func next() async throws(OBSClientError) -> Page? {
            try await next(isolation: nil)
        }
    }

    /// An iterator starting at the first page.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(marker: start, fetch: fetch) }

    /// Every page, in order.
    public func collect() async throws(OBSClientError) -> [Page] {
        var pages: [Page] = []
        var iterator = makeAsyncIterator()
        while let page = try await iterator.next() { pages.append(page) }
        return pages
    }
}
