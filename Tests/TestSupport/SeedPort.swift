import Glibc

/// Runs `body` while holding a lock that every test using the seed's fixed address (127.0.0.2:49152) takes.
///
/// The seed's Python programs hard-code that address, and all test targets run in one process in parallel, so
/// suites in different targets (the seed fixtures, the tracer) must not use it at the same time. An `flock(2)` on a
/// file serialises them across targets, and across concurrent `swift test` runs on one machine too.
public func withSeedPort<T>(_ body: () throws -> T) throws -> T {
    let fd = open("/tmp/packetflow-tests-seed-port.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o666)
    guard fd >= 0 else { return try body() }
    defer { close(fd) }
    while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
    defer { flock(fd, LOCK_UN) }
    return try body()
}
