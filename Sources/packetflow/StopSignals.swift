import Glibc
import Synchronization
import SystemCalls

/// The descriptor SIGINT and SIGTERM write a byte to (-1: none), for their handler (a C function pointer cannot
/// capture anything). A plain integer in an atomic: a handler that touched a Swift object would retain and release
/// it, which may lock or allocate in the middle of whatever the signal interrupted.
private let stopDescriptor = Atomic<Int32>(-1)

/// Makes SIGINT and SIGTERM write one byte to `descriptor` (a self-pipe or a server's stop pipe, which a loop
/// polls), or to nothing once `descriptor` is -1 (its pipe closed: a later signal must not write to a descriptor
/// reused by then). The handler calls only write(2), which is async-signal-safe, and keeps errno for the code the
/// signal interrupted.
func stopOnSignals(writingTo descriptor: Int32) {
    stopDescriptor.store(descriptor, ordering: .releasing)
    let handler: @convention(c) (Int32) -> Void = { _ in
        let saved = errno
        let fd = stopDescriptor.load(ordering: .acquiring)
        var byte: UInt8 = 1
        if fd >= 0 { _ = write(fd, &byte, 1) }
        errno = saved
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
    Linux.unblock([SIGINT, SIGTERM])
}
