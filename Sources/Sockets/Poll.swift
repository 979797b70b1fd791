import Glibc
import SystemCalls

/// The `events` / `revents` bits of `poll(2)`.
public struct PollEvents: OptionSet, Hashable, Sendable {
    public let rawValue: Int16

    public init(rawValue: Int16) {
        self.rawValue = rawValue
    }

    /// `POLLIN`: data to read, a connection to accept, or end of stream.
    public static let readable = PollEvents(rawValue: Int16(POLLIN))
    /// `POLLOUT`: room to write; for a connecting socket, the connection attempt has finished.
    public static let writable = PollEvents(rawValue: Int16(POLLOUT))
    /// `POLLRDHUP`: the peer shut down its writing half (a FIN arrived).
    public static let readHangup = PollEvents(rawValue: Linux.POLLRDHUP)
    /// `POLLERR`: an error is pending (reported only, never requested).
    public static let error = PollEvents(rawValue: Int16(POLLERR))
    /// `POLLHUP`: both directions are shut (reported only).
    public static let hangup = PollEvents(rawValue: Int16(POLLHUP))
    /// `POLLNVAL`: the descriptor is not open (reported only).
    public static let invalid = PollEvents(rawValue: Int16(POLLNVAL))
}

/// `poll(2)` over a set of descriptors.
public enum Poll {
    /// One descriptor and the events wanted on it.
    public struct Request: Sendable, Hashable {
        public var fileDescriptor: Int32
        public var events: PollEvents

        public init(fileDescriptor: Int32, events: PollEvents) {
            self.fileDescriptor = fileDescriptor
            self.events = events
        }
    }

    /// Waits until one of the descriptors has an event or `timeout` passes (`nil` waits for ever).
    ///
    /// Returns the events that happened, one entry per request in the same order; all empty on timeout. A signal
    /// does not end the wait early nor stretch it: the retry waits only for what is left of `timeout`.
    public static func wait(_ requests: [Request], timeout: Duration?) throws(Errno) -> [PollEvents] {
        var fds = requests.map { pollfd(fd: $0.fileDescriptor, events: $0.events.rawValue, revents: 0) }
        let deadline = timeout.map { ContinuousClock.now + $0 }
        try syscall {
            Glibc.poll(&fds, nfds_t(fds.count), milliseconds(until: deadline))
        }
        return fds.map { PollEvents(rawValue: $0.revents) }
    }

    /// Milliseconds left until `deadline` for `poll(2)`, rounded up so a wait never ends just before it
    /// (and never becomes a busy loop of zero-length waits); -1 (for ever) without a deadline.
    static func milliseconds(until deadline: ContinuousClock.Instant?) -> Int32 {
        guard let deadline else { return -1 }
        let left = ContinuousClock.now.duration(to: deadline)
        if left <= .zero { return 0 }
        let (seconds, attoseconds) = left.components
        let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: millis)
    }
}

/// A self-pipe: a way for any thread — or a signal handler — to wake a thread blocked in ``Poll/wait(_:timeout:)``.
///
/// Poll ``readDescriptor`` for ``PollEvents/readable``; ``wake()`` makes it readable. Both ends are non-blocking
/// and close-on-exec, and are closed when the pipe is released.
public final class WakePipe: Sendable {
    /// The end to poll.
    public let readDescriptor: Int32
    /// The end `wake()` writes to; public for a signal handler, which can `write(2)` one byte to it but must not
    /// touch a Swift object (a retain or release may lock or allocate).
    public let writeDescriptor: Int32

    /// `pipe2(2)` with `O_NONBLOCK | O_CLOEXEC`.
    public init() throws(Errno) {
        var fds: [Int32] = [-1, -1]
        try syscall { Linux.pipe2(&fds, O_NONBLOCK | O_CLOEXEC) }
        readDescriptor = fds[0]
        writeDescriptor = fds[1]
    }

    /// Makes ``readDescriptor`` readable. Calls only `write(2)`, so it is safe in a signal handler; a full pipe
    /// is already readable, so `EAGAIN` is ignored.
    public func wake() {
        var byte: UInt8 = 1
        _ = try? syscall { Glibc.write(writeDescriptor, &byte, 1) }
    }

    /// Reads away every pending wake-up; returns whether there was one.
    @discardableResult
    public func drain() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 64)
        var woke = false
        while let count = try? syscall({ Glibc.read(readDescriptor, &buffer, buffer.count) }), count > 0 {
            woke = true
        }
        return woke
    }

    deinit {
        _ = try? syscall(retryOnInterrupt: false) { Glibc.close(readDescriptor) }
        _ = try? syscall(retryOnInterrupt: false) { Glibc.close(writeDescriptor) }
    }
}
