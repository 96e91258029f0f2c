// A detached thread for the executable's long blocking loops (the control socket's
// accept, the SIGHUP pipe): they must not occupy the Swift concurrency pool's few threads.
#if canImport(Glibc)
import Glibc
#endif

final class ServiceThread: @unchecked Sendable {
    // @unchecked: handed once to the new thread, which alone uses it.
    private let body: @Sendable () -> Void

    private init(body: @escaping @Sendable () -> Void) { self.body = body }

    /// Starts `body` on a new detached thread; false when no thread could be created.
    static func start(_ body: @escaping @Sendable () -> Void) -> Bool {
        let box = Unmanaged.passRetained(ServiceThread(body: body)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { argument in
            Unmanaged<ServiceThread>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, box)
        guard created == 0 else {
            Unmanaged<ServiceThread>.fromOpaque(box).release()
            return false
        }
        pthread_detach(thread)
        return true
    }
}
