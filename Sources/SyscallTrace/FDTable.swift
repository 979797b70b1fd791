/// What one descriptor number of a process refers to, as far as the tracer knows.
public enum FDEntry: Hashable, Sendable {
    /// A socket, named by its inode (`socket:[inode]`), which survives dup(2) and fork(2) unchanged.
    case socket(UInt64)
    /// Anything else (file, pipe, terminal): its read/write/close calls are not reported.
    case other
}

/// The descriptor table of one process, followed through the calls that change it. Numbers are reused constantly
/// (CPython closes fd 3 dozens of times at start-up), so an entry lives from the call that created it to the call
/// that closed it, and an unknown number is looked up (by the caller) rather than guessed.
public struct FDTable: Sendable, Equatable {
    public private(set) var entries: [Int32: FDEntry] = [:]

    public init() {}

    public subscript(fd: Int32) -> FDEntry? {
        get { entries[fd] }
        set { entries[fd] = newValue }
    }

    /// socket(2), accept(2): `fd` now names a new socket.
    public mutating func opened(_ fd: Int32, socket inode: UInt64) { entries[fd] = .socket(inode) }

    /// close(2): the number is free; the next open may be anything.
    public mutating func closed(_ fd: Int32) { entries[fd] = nil }

    /// dup(2), dup2(2), dup3(2), fcntl(F_DUPFD): `new` names what `old` names (dup2 closes `new` first).
    public mutating func duplicated(_ old: Int32, to new: Int32) {
        if old == new { return }
        entries[new] = entries[old]
    }

    /// execve(2) closes descriptors marked close-on-exec, which the tracer cannot see: keep only what is still open
    /// with the same identity (`stillOpen` answers from /proc).
    public mutating func afterExec(stillOpen: (Int32) -> FDEntry?) {
        var next: [Int32: FDEntry] = [:]
        for (fd, entry) in entries {
            if let now = stillOpen(fd), now == entry { next[fd] = entry }
        }
        entries = next
    }

    /// The numbers that currently name `inode`.
    public func descriptors(of inode: UInt64) -> [Int32] {
        entries.filter { $0.value == .socket(inode) }.map(\.key).sorted()
    }
}
