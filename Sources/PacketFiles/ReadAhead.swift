import Glibc

/// `read(2)` on a second thread: while the parser works through one chunk, the next ones are already being
/// copied out of the kernel. A ring of `slots` chunks of `chunkSize` bytes bounds the memory; the reader thread
/// waits when all are full. Used only for regular files (a read from one always returns promptly, so stopping
/// early never waits on a pipe). The consumer side is single-threaded: only `InputBuffer` calls `read`.
final class ReadAhead: @unchecked Sendable {
    private let fd: Int32
    let chunkSize: Int
    /// Free bytes in front of each chunk's data, where `InputBuffer` puts the unconsumed tail of the chunk
    /// before it, so a record that spans two chunks is contiguous without copying the chunk.
    let headroom: Int
    /// Each allocation: `headroom` bytes, then `chunkSize` bytes of data.
    private let chunks: [UnsafeMutableRawPointer]
    /// Per slot: bytes in it, -1 while empty. Guarded by `mutex`.
    private var lengths: [Int]
    /// Set by the reader thread on end of input or a failed read, with the slot where it happened.
    private var endSlot = -1
    private var failure: Sys.Failure?
    private var stopping = false
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>
    private var thread = pthread_t()
    private var started = false
    // Consumer position (touched only by the consumer thread).
    private var readSlot = 0
    private var readOffset = 0

    init(fd: Int32, chunkSize: Int, slots: Int = 4) {
        self.fd = fd
        self.chunkSize = max(chunkSize, 1)
        let headroom = max(chunkSize / 4, 64)
        self.headroom = headroom
        chunks = (0..<max(slots, 3)).map { _ in
            UnsafeMutableRawPointer.allocate(byteCount: headroom + max(chunkSize, 1), alignment: 64)
        }
        lengths = Array(repeating: -1, count: chunks.count)
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        changed = .allocate(capacity: 1)
        changed.initialize(to: pthread_cond_t())
        pthread_cond_init(changed, nil)
    }

    /// Starts the reader thread; false when the system refuses a thread (the caller then reads directly).
    func start() -> Bool {
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { context in
                let me = Unmanaged<ReadAhead>.fromOpaque(context!).takeRetainedValue()
                me.produce()
                return nil
            }, context)
        if rc != 0 {
            Unmanaged<ReadAhead>.fromOpaque(context).release()
            return false
        }
        started = true
        return true
    }

    /// Stops the reader thread and waits for it; call before closing the descriptor.
    func stop() {
        guard started else { return }
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(mutex)
        pthread_join(thread, nil)
        started = false
    }

    deinit {
        stop()
        for c in chunks { c.deallocate() }
        pthread_cond_destroy(changed)
        changed.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// The reader thread: fills slot after slot until the end of input, a failed read, or `stop()`.
    private func produce() {
        var slot = 0
        while true {
            pthread_mutex_lock(mutex)
            while lengths[slot] >= 0 && !stopping { pthread_cond_wait(changed, mutex) }
            let stop = stopping
            pthread_mutex_unlock(mutex)
            if stop { return }
            // Fill the whole chunk (a short read is not the end of a regular file).
            var filled = 0
            var failed: Sys.Failure?
            var atEnd = false
            while filled < chunkSize {
                switch Sys.read(fd, chunks[slot] + headroom + filled, chunkSize - filled) {
                case .success(0): atEnd = true
                case .success(let n): filled += n
                case .failure(let f): failed = f
                }
                if atEnd || failed != nil { break }
            }
            pthread_mutex_lock(mutex)
            lengths[slot] = filled
            if atEnd || failed != nil {
                endSlot = slot
                failure = failed
            }
            pthread_cond_broadcast(changed)
            pthread_mutex_unlock(mutex)
            if atEnd || failed != nil { return }
            slot = (slot + 1) % chunks.count
        }
    }

    /// The slot `acquire` handed out last, still in use by the caller.
    private var held: Int?
    private var pendingRelease: Int?

    /// Hands out the next whole chunk without copying it: its data (`headroom` free bytes before it), its length,
    /// and whether it is the last one (then with the failure, if a read failed). The chunk handed out before
    /// stays valid until `releasePrevious()`. Not to be mixed with `read` until `releaseAll()`.
    func acquire() -> (data: UnsafeMutableRawPointer, length: Int, last: Bool, failure: Sys.Failure?) {
        pthread_mutex_lock(mutex)
        while lengths[readSlot] < 0 { pthread_cond_wait(changed, mutex) }
        let length = lengths[readSlot]
        let last = endSlot == readSlot
        let failed = last ? failure : nil
        pthread_mutex_unlock(mutex)
        pendingRelease = held
        held = readSlot
        let data = chunks[readSlot] + headroom
        if !last { readSlot = (readSlot + 1) % chunks.count }
        readOffset = last ? length : 0
        return (data, length, last, failed)
    }

    /// Gives the chunk handed out before the current one back to the reader thread.
    func releasePrevious() {
        guard let slot = pendingRelease else { return }
        pendingRelease = nil
        free(slot)
    }

    /// Gives back every chunk handed out (the caller has copied what it still needs).
    func releaseAll() {
        releasePrevious()
        if let slot = held { free(slot) }
        held = nil
    }

    private func free(_ slot: Int) {
        pthread_mutex_lock(mutex)
        lengths[slot] = -1
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(mutex)
    }

    /// Like `read(2)`: copies up to `count` bytes into `into`; 0 at the end of input.
    func read(_ into: UnsafeMutableRawPointer, _ count: Int) -> Result<Int, Sys.Failure> {
        var copied = 0
        while copied < count {
            pthread_mutex_lock(mutex)
            while lengths[readSlot] < 0 { pthread_cond_wait(changed, mutex) }
            let length = lengths[readSlot]
            let isEnd = endSlot == readSlot
            let failed = failure
            pthread_mutex_unlock(mutex)
            let n = min(count - copied, length - readOffset)
            if n > 0 {
                (into + copied).copyMemory(from: chunks[readSlot] + headroom + readOffset, byteCount: n)
                copied += n
                readOffset += n
            }
            if readOffset < length { break }
            if isEnd {
                // Deliver what was read before a failure; report the failure on the next call.
                if copied == 0, let failed { return .failure(failed) }
                break
            }
            pthread_mutex_lock(mutex)
            lengths[readSlot] = -1
            pthread_cond_broadcast(changed)
            pthread_mutex_unlock(mutex)
            readSlot = (readSlot + 1) % chunks.count
            readOffset = 0
        }
        return .success(copied)
    }
}
