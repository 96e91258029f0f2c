// The only file of the package that touches libcurl's handles, callbacks and raw pointers.
//
// Design note
// - One event thread per transport drives one CURLM with `curl_multi_perform` +
//   `curl_multi_poll`; callers hand transfers over through a Mutex-guarded inbox and wake the
//   thread with `curl_multi_wakeup`. We chose poll over the socket-action API: it needs no
//   epoll/timer bookkeeping of our own, and at the parallelism of an upload (tens of
//   connections) curl's internal poll over all sockets costs nothing measurable; socket-action
//   pays off at thousands of connections.
// - A transport runs two loops, one per lane (CurlTransport.swift): control transfers (HEAD,
//   LIST, initiate, complete, abort) have their own thread and connections, so metadata never
//   waits behind part uploads, neither for a slot nor for a thread busy feeding part bodies.
// - At most `slots` transfers of a loop are in its multi at once, further ones wait on the event
//   thread in a FIFO (so queued transfers never run into curl's timeouts). The multi's connection
//   cache (CURLMOPT_MAXCONNECTS) has the same size, so every transfer finds a kept-alive HTTP/1.1
//   connection; finished easy handles are reset and kept for the next transfer.
// - Bodies are read by the read callback straight from the caller's memory (curl copies them
//   into its socket buffer, we never copy); 2xx response bodies of `.memory` destinations are
//   written by the write callback straight into the caller's memory.
// - Pointer ownership: a running transfer is kept alive by `running` (event-thread only), so the
//   userdata pointers handed to curl are unretained (`passUnretained`); the event thread itself
//   is started with one `passRetained` of the loop, released by the thread when it starts.
// - Cancellation: `onCancel` sets the transfer's atomic flag and wakes the loop; the loop aborts
//   flagged transfers (waiting or running) on every turn, so a cancellation is never lost.
import CCurl
import OBSProtocol
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `curl_global_init` exactly once per process (Swift initialises globals lazily and atomically).
private let curlGlobalInitResult: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

/// One request in flight. Immutable parts are set before submission; the mutable response state
/// is touched only by the event thread.
final class CurlTransfer: @unchecked Sendable {
    let request: HTTPRequest
    /// Set by any thread when the caller's task is cancelled; read by the event thread.
    let cancelRequested = Atomic<Bool>(false)
    /// Written once before submission (published by the inbox lock), resumed once by the event thread.
    var continuation: CheckedContinuation<Result<HTTPResponse, TransportError>, Never>?

    // Event-thread state.
    var easy: EasyHandle?
    var headerList: HeaderList?
    var status = 0
    var headers = HeaderFields()
    var collected: [UInt8] = []
    var bytesWritten = 0
    var readOffset = 0
    var overflowLimit: Int?
    /// The caller's memory of a `.memory` destination and of a `.memory` body, resolved once: the
    /// request keeps their owners alive for the transfer's life, so curl's callbacks copy without
    /// going through the request's enums (a retain and a release of the owner per callback, a
    /// few percent of a fast GET's CPU).
    let destinationBytes: UnsafeMutableRawBufferPointer?
    let bodyBytes: UnsafeRawBufferPointer?

    init(request: HTTPRequest) {
        self.request = request
        destinationBytes = if case .memory(let region) = request.destination { region.mutableBytes } else { nil }
        bodyBytes = if case .memory(let region) = request.body { region.bytes } else { nil }
    }

    func resume(_ result: Result<HTTPResponse, TransportError>) {
        continuation?.resume(returning: result)
        continuation = nil
    }

    func error(_ kind: TransportError.Kind, _ message: String) -> TransportError {
        TransportError(kind: kind, message: message, url: request.url)
    }
}

/// An owned `CURL *` and its error buffer; cleaned up in `deinit`.
final class EasyHandle {
    let pointer: UnsafeMutableRawPointer
    /// CURLOPT_ERRORBUFFER, CURL_ERROR_SIZE bytes, owned.
    let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        guard let pointer = curl_easy_init() else { return nil }
        self.pointer = pointer
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(pointer)
        errorBuffer.deallocate()
    }

    /// Forgets all options (keeps the handle and nothing else) for the next transfer.
    func reset() {
        curl_easy_reset(pointer)
        errorBuffer[0] = 0
    }

    var errorText: String { String(cString: errorBuffer) }
}

/// An owned `curl_slist` of request header lines; freed in `deinit`.
final class HeaderList {
    private(set) var pointer: UnsafeMutablePointer<curl_slist>?

    init(_ lines: [String]) {
        for line in lines { pointer = curl_slist_append(pointer, line) }
    }

    deinit { curl_slist_free_all(pointer) }
}

/// The event loop: one thread, one CURLM.
final class CurlEventLoop: @unchecked Sendable {
    // @unchecked: `multi`, `configuration` and `slots` are immutable; `inbox` is a Mutex;
    // everything else is touched by the event thread only.
    private let multi: UnsafeMutableRawPointer
    private let configuration: TransportConfiguration
    /// Transfers in the multi at once (and connections kept alive).
    private let slots: Int

    private struct Inbox {
        var submitted: [CurlTransfer] = []
        var shuttingDown = false
    }
    /// Hands transfers and the shutdown request from calling threads to the event thread.
    private let inbox = Mutex(Inbox())

    // Event-thread state.
    /// Transfers waiting for a slot, in submission order.
    private var waiting: [CurlTransfer] = []
    private var running: [UnsafeMutableRawPointer: CurlTransfer] = [:]
    private var idleHandles: [EasyHandle] = []

    init(configuration: TransportConfiguration, slots: Int) throws(TransportError) {
        guard curlGlobalInitResult == CURLE_OK, let multi = curl_multi_init() else {
            throw TransportError(kind: .unavailable, message: "curl initialisation failed", url: "")
        }
        self.multi = multi
        self.configuration = configuration
        self.slots = max(1, slots)
        _ = obs_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, self.slots)
    }

    deinit {
        // Runs on the event thread after `run` returned: no transfer is left.
        idleHandles.removeAll()
        curl_multi_cleanup(multi)
    }

    /// Starts the event thread. The thread owns one retain of the loop for as long as it runs.
    func start() throws(TransportError) {
        let retained = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            // Pairs the passRetained in `start`: the thread's reference, dropped when `run` returns.
            let loop = Unmanaged<CurlEventLoop>.fromOpaque(argument!).takeRetainedValue()
            loop.run()
            return nil
        }, retained)
        guard rc == 0 else {
            // The thread never started: release its reference here instead.
            Unmanaged<CurlEventLoop>.fromOpaque(retained).release()
            throw TransportError(kind: .unavailable, message: "pthread_create failed (\(rc))", url: "")
        }
        pthread_detach(thread)
    }

    /// Queues a transfer; its continuation is resumed exactly once by the event thread.
    func submit(_ transfer: CurlTransfer, _ continuation: CheckedContinuation<Result<HTTPResponse, TransportError>, Never>) {
        transfer.continuation = continuation
        let (accepted, first) = inbox.withLock { inbox in
            guard !inbox.shuttingDown else { return (false, false) }
            inbox.submitted.append(transfer)
            return (true, inbox.submitted.count == 1)
        }
        if accepted {
            // Only the first transfer of an undrained inbox wakes the loop: its wake-up comes after
            // its append, and the drain that follows takes everything submitted until then.
            if first { wakeUp() }
        } else {
            transfer.resume(.failure(transfer.error(.unavailable, "transport shut down")))
        }
    }

    /// Asks the loop to abort a transfer (any thread).
    func cancel(_ transfer: CurlTransfer) {
        transfer.cancelRequested.store(true, ordering: .releasing)
        wakeUp()
    }

    /// Asks the event thread to fail what is left and exit (any thread).
    func shutDown() {
        inbox.withLock { $0.shuttingDown = true }
        wakeUp()
    }

    private func wakeUp() { _ = curl_multi_wakeup(multi) }

    // MARK: Event thread

    private func run() {
        while true {
            let (submitted, shuttingDown) = inbox.withLock { inbox in
                defer { inbox.submitted.removeAll() }
                return (inbox.submitted, inbox.shuttingDown)
            }
            waiting += submitted
            if shuttingDown {
                for transfer in waiting { transfer.resume(.failure(transfer.error(.unavailable, "transport shut down"))) }
                waiting.removeAll()
                for transfer in Array(running.values) { finish(transfer, .failure(transfer.error(.unavailable, "transport shut down"))) }
                return
            }
            abortCancelled()
            startWaiting()
            var stillRunning: Int32 = 0
            _ = curl_multi_perform(multi, &stillRunning)
            collectFinished()
            _ = curl_multi_poll(multi, nil, 0, canStartMore ? 0 : 1000, nil)
        }
    }

    private func abortCancelled() {
        let cancelled = { (transfer: CurlTransfer) -> Bool in
            guard transfer.cancelRequested.load(ordering: .acquiring) else { return false }
            transfer.resume(.failure(transfer.error(.cancelled, "cancelled")))
            return true
        }
        waiting.removeAll(where: cancelled)
        for transfer in running.values where transfer.cancelRequested.load(ordering: .acquiring) {
            finish(transfer, .failure(transfer.error(.cancelled, "cancelled")))
        }
    }

    /// Whether the first waiting transfer may start now.
    private var canStartMore: Bool { running.count < slots && !waiting.isEmpty }

    private func startWaiting() {
        while canStartMore {
            let transfer = waiting.removeFirst()
            guard let easy = idleHandles.popLast() ?? EasyHandle() else {
                transfer.resume(.failure(transfer.error(.unavailable, "curl_easy_init failed")))
                continue
            }
            transfer.easy = easy
            let code = configure(easy, for: transfer)
            guard code == CURLE_OK else {
                finish(transfer, .failure(transfer.error(.curl(code: Int(code.rawValue)), String(cString: curl_easy_strerror(code)))), added: false)
                continue
            }
            running[easy.pointer] = transfer
            let added = curl_multi_add_handle(multi, easy.pointer)
            if added != CURLM_OK {
                finish(transfer, .failure(transfer.error(.unavailable, String(cString: curl_multi_strerror(added)))), added: false)
            }
        }
    }

    private func collectFinished() {
        var queued: Int32 = 0
        while let message = curl_multi_info_read(multi, &queued) {
            guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                  let transfer = running[easy] else { continue }
            let code = message.pointee.data.result
            finish(transfer, result(of: transfer, code: code))
        }
    }

    private func result(of transfer: CurlTransfer, code: CURLcode) -> Result<HTTPResponse, TransportError> {
        if let limit = transfer.overflowLimit {
            return .failure(transfer.error(.responseTooLarge(limit: limit), "response body too large"))
        }
        guard code == CURLE_OK, let easy = transfer.easy else {
            let text = transfer.easy.map(\.errorText).flatMap { $0.isEmpty ? nil : $0 } ?? String(cString: curl_easy_strerror(code))
            return .failure(transfer.error(.curl(code: Int(code.rawValue)), text))
        }
        var status = 0
        _ = obs_curl_easy_getinfo_long(easy.pointer, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPResponse(status: status, headers: transfer.headers, body: transfer.collected, bytesWritten: transfer.bytesWritten))
    }

    /// Removes the transfer from the multi, recycles its handle and resumes its caller.
    private func finish(_ transfer: CurlTransfer, _ result: Result<HTTPResponse, TransportError>, added: Bool = true) {
        if let easy = transfer.easy {
            if added { _ = curl_multi_remove_handle(multi, easy.pointer) }
            running[easy.pointer] = nil
            easy.reset()
            if idleHandles.count < slots { idleHandles.append(easy) }
            transfer.easy = nil
        }
        transfer.headerList = nil
        transfer.resume(result)
    }

    // MARK: Easy handle set-up

    private func configure(_ easy: EasyHandle, for transfer: CurlTransfer) -> CURLcode {
        let handle = easy.pointer
        let request = transfer.request
        let userdata = Unmanaged.passUnretained(transfer).toOpaque() // kept alive by `running`
        var lines = request.headers.map { $0.value.isEmpty ? "\($0.name);" : "\($0.name): \($0.value)" }
        lines.append("Expect:") // no 100-continue round trip before PUT/POST bodies
        let headerList = HeaderList(lines)
        transfer.headerList = headerList

        var code = CURLE_OK
        func set(_ result: CURLcode) { if code == CURLE_OK { code = result } }
        set(obs_curl_easy_setopt_str(handle, CURLOPT_URL, request.url))
        set(obs_curl_easy_setopt_ptr(handle, CURLOPT_ERRORBUFFER, easy.errorBuffer))
        set(obs_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        set(obs_curl_easy_setopt_long(handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1)))
        set(obs_curl_easy_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1))
        set(obs_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeout.milliseconds))
        set(obs_curl_easy_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedLimit))
        let quietTime = request.awaitsServerWork ? max(configuration.lowSpeedTime, configuration.serverWorkTime) : configuration.lowSpeedTime
        set(obs_curl_easy_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, max(1, quietTime.milliseconds / 1000)))
        if let timeout = request.timeout {
            set(obs_curl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, timeout.milliseconds)))
        }
        set(obs_curl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, configuration.verifyTLS ? 1 : 0))
        set(obs_curl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, configuration.verifyTLS ? 2 : 0))
        if let caFile = configuration.caFile { set(obs_curl_easy_setopt_str(handle, CURLOPT_CAINFO, caFile)) }
        set(obs_curl_easy_setopt_str(handle, CURLOPT_USERAGENT, configuration.userAgent))
        set(obs_curl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList.pointer))
        set(obs_curl_easy_setopt_header_cb(handle, headerCallback))
        set(obs_curl_easy_setopt_ptr(handle, CURLOPT_HEADERDATA, userdata))
        set(obs_curl_easy_setopt_write_cb(handle, writeCallback))
        set(obs_curl_easy_setopt_ptr(handle, CURLOPT_WRITEDATA, userdata))
        if case .memory = request.destination {
            set(obs_curl_easy_setopt_long(handle, CURLOPT_BUFFERSIZE, min(configuration.uploadBufferSize, curlMaxReadSize)))
        }

        switch request.method {
        case "GET":
            break
        case "HEAD":
            set(obs_curl_easy_setopt_long(handle, CURLOPT_NOBODY, 1))
        case "PUT", "POST":
            // Upload mode sends Content-Length from INFILESIZE and reads the body through the
            // read callback (also for an empty body); CUSTOMREQUEST turns the PUT into a POST.
            set(obs_curl_easy_setopt_long(handle, CURLOPT_UPLOAD, 1))
            set(obs_curl_easy_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body.count)))
            set(obs_curl_easy_setopt_read_cb(handle, readCallback))
            set(obs_curl_easy_setopt_ptr(handle, CURLOPT_READDATA, userdata))
            set(obs_curl_easy_setopt_seek_cb(handle, seekCallback))
            set(obs_curl_easy_setopt_ptr(handle, CURLOPT_SEEKDATA, userdata))
            if request.body.count > 0 {
                set(obs_curl_easy_setopt_long(handle, CURLOPT_UPLOAD_BUFFERSIZE, configuration.uploadBufferSize))
            }
            if request.method == "POST" { set(obs_curl_easy_setopt_str(handle, CURLOPT_CUSTOMREQUEST, "POST")) }
        default:
            set(obs_curl_easy_setopt_str(handle, CURLOPT_CUSTOMREQUEST, request.method))
        }
        return code
    }
}

// MARK: C callbacks (userdata is an unretained CurlTransfer kept alive by `running`)

/// Limit on a collected error body when the 2xx destination is caller memory.
private let errorBodyLimit = 1 << 20
/// CURL_MAX_READ_SIZE (a macro Swift does not import): the largest CURLOPT_BUFFERSIZE.
private let curlMaxReadSize = 512 * 1024

/// The transfer behind curl's userdata, without a retain and a release per callback (several
/// per MiB of a body): `running` keeps it alive while curl may call back.
private func withTransfer<Result>(_ userdata: UnsafeMutableRawPointer, _ body: (CurlTransfer) -> Result) -> Result {
    Unmanaged<CurlTransfer>.fromOpaque(userdata)._withUnsafeGuaranteedRef(body)
}

private let headerCallback: curl_write_callback = { buffer, size, count, userdata in
    let length = size * count
    guard let buffer, let userdata else { return length }
    withTransfer(userdata) { $0.receiveHeaderLine(UnsafeRawBufferPointer(start: buffer, count: length)) }
    return length
}

private let writeCallback: curl_write_callback = { buffer, size, count, userdata in
    let length = size * count
    guard let buffer, let userdata else { return length }
    return withTransfer(userdata) { $0.receiveBody(UnsafeRawBufferPointer(start: buffer, count: length)) }
}

private let readCallback: curl_read_callback = { buffer, size, count, userdata in
    guard let buffer, let userdata else { return 0 }
    return withTransfer(userdata) { $0.sendBody(into: UnsafeMutableRawBufferPointer(start: buffer, count: size * count)) }
}

extension CurlTransfer {
    /// Takes one header line as curl delivers it (with its line end), read in place: only the
    /// name and the value become Strings.
    fileprivate func receiveHeaderLine(_ line: UnsafeRawBufferPointer) {
        let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        if line.starts(with: "HTTP/".utf8) {
            // A new response starts (after a 100 Continue or a redirect): forget the previous one.
            // The status is the second space-separated word.
            var index = line.firstIndex(of: space) ?? line.endIndex
            while index < line.endIndex, line[index] == space { index += 1 }
            var code = 0, digits = 0
            while index < line.endIndex, line[index] >= UInt8(ascii: "0"), line[index] <= UInt8(ascii: "9"), digits < 3 {
                code = code * 10 + Int(line[index] - UInt8(ascii: "0"))
                digits += 1
                index += 1
            }
            status = digits == 3 ? code : 0
            headers = HeaderFields()
            headers.reserveCapacity(16)
        } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            var start = colon + 1, end = line.endIndex
            while end > start, line[end - 1] == cr || line[end - 1] == lf { end -= 1 }
            while end > start, line[end - 1] == space || line[end - 1] == tab { end -= 1 }
            while start < end, line[start] == space || line[start] == tab { start += 1 }
            headers.add(name: String(decoding: line[..<colon], as: UTF8.self), value: String(decoding: line[start..<end], as: UTF8.self))
        }
    }
}

extension CurlTransfer {
    /// Takes a piece of the response body; the bytes taken, or 0 to abort the transfer
    /// (CURLE_WRITE_ERROR) when the body outgrows its destination.
    fileprivate func receiveBody(_ chunk: UnsafeRawBufferPointer) -> Int {
        if let destination = destinationBytes, (200..<300).contains(status) {
            guard bytesWritten + chunk.count <= destination.count else {
                overflowLimit = destination.count
                return 0
            }
            UnsafeMutableRawBufferPointer(rebasing: destination[bytesWritten ..< bytesWritten + chunk.count]).copyMemory(from: chunk)
            bytesWritten += chunk.count
            return chunk.count
        }
        let limit = if case .collect(let limit) = request.destination { limit } else { errorBodyLimit }
        guard collected.count + chunk.count <= limit else {
            overflowLimit = limit
            return 0
        }
        collected.append(contentsOf: chunk)
        return chunk.count
    }

    /// Copies the next piece of the request body into `target`; the bytes copied, 0 at its end.
    fileprivate func sendBody(into target: UnsafeMutableRawBufferPointer) -> Int {
        func copy(from source: UnsafeRawBufferPointer) -> Int {
            let length = min(target.count, source.count - readOffset)
            guard length > 0 else { return 0 }
            target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[readOffset ..< readOffset + length]))
            readOffset += length
            return length
        }
        if let bodyBytes { return copy(from: bodyBytes) }
        switch request.body {
        case .none, .memory: return 0
        case .bytes(let bytes): return bytes.withUnsafeBytes { copy(from: $0) }
        }
    }
}

/// Lets curl rewind the body when it resends on a fresh connection (a kept-alive one died).
private let seekCallback: curl_seek_callback = { userdata, offset, origin in
    guard let userdata else { return CURL_SEEKFUNC_CANTSEEK }
    return withTransfer(userdata) { transfer in
        guard origin == SEEK_SET, offset >= 0, Int(offset) <= transfer.request.body.count else { return CURL_SEEKFUNC_CANTSEEK }
        transfer.readOffset = Int(offset)
        return CURL_SEEKFUNC_OK
    }
}
