import Glibc
import PacketWire

/// Where the reader's bytes come from. Both sources go through the same buffer and parsing code.
enum InputSource {
    case descriptor(Int32, owned: Bool)
    /// Borrowed memory (the fuzzer and in-memory callers), copied into the buffer like `read(2)` would.
    case memory(UnsafeRawBufferPointer)
    /// A regular file read ahead on a second thread (`ReadAhead`); the descriptor is closed when `owned`.
    case readAhead(ReadAhead, fd: Int32, owned: Bool)
}

/// A window onto the input: bytes `[start, end)` of `storage` are the next unconsumed bytes of the file.
/// It grows (up to `maxCapacity`) only when it is full of real input, so memory follows the largest record
/// actually present, never a length field.
struct InputBuffer: ~Copyable {
    private var storage: UnsafeMutableRawPointer
    private(set) var capacity: Int
    private var start = 0
    private var end = 0
    private var memoryPosition = 0
    private(set) var atEnd = false
    /// File offset of the first unconsumed byte.
    private(set) var offset = 0
    let source: InputSource
    let maxCapacity: Int
    /// The buffer this owns; `storage` points into a `ReadAhead` chunk instead while chunks are lent.
    private var owned: UnsafeMutableRawPointer
    private var ownedCapacity: Int
    /// With read-ahead: true once records are copied (a record did not fit a chunk's headroom), so bytes come
    /// through `ReadAhead.read` into `owned`; false while whole chunks are lent.
    private var copying = false
    /// With read-ahead: the last chunk was handed out; a failed read is reported after its bytes.
    private var drained = false
    private var pendingFailure: Sys.Failure?

    init(source: InputSource, capacity: Int, maxCapacity: Int) {
        self.source = source
        self.capacity = max(capacity, 16)
        self.maxCapacity = max(maxCapacity, self.capacity)
        self.storage = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
        owned = storage
        ownedCapacity = self.capacity
    }

    deinit {
        owned.deallocate()
        switch source {
        case .descriptor(let fd, owned: true): _ = Sys.close(fd)
        case .readAhead(let r, let fd, let owned):
            r.stop()
            if owned { _ = Sys.close(fd) }
        default: break
        }
    }

    var available: Int { end - start }

    /// The unconsumed bytes; valid until the next `ensure`.
    var view: ByteView { ByteView(UnsafeRawBufferPointer(start: storage + start, count: end - start)) }

    mutating func consume(_ n: Int) {
        let n = min(max(n, 0), end - start)
        start += n
        offset += n
    }

    /// Makes at least `n` bytes available (n <= maxCapacity); false when the input ends first.
    mutating func ensure(_ n: Int) -> Result<Bool, Sys.Failure> {
        while end - start < n {
            if atEnd { return .success(false) }
            if case .readAhead(let r, _, _) = source, !copying {
                if drained {
                    atEnd = true
                    if let f = pendingFailure {
                        pendingFailure = nil
                        return .failure(f)
                    }
                    continue
                }
                let live = end - start
                if n - live <= r.chunkSize && live <= r.headroom {
                    // Lend the next chunk: move the unconsumed tail in front of its data, no copy of the chunk.
                    let chunk = r.acquire()
                    if live > 0 { (chunk.data - live).copyMemory(from: storage + start, byteCount: live) }
                    r.releasePrevious()
                    storage = chunk.data - live
                    start = 0
                    end = live + chunk.length
                    capacity = end
                    if chunk.last {
                        drained = true
                        pendingFailure = chunk.failure
                    }
                    continue
                }
                // A record longer than a chunk's headroom: copy from here on, into the owned buffer.
                copying = true
                if live > ownedCapacity {
                    owned.deallocate()
                    var c = ownedCapacity
                    while c < live { c *= 2 }
                    owned = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 16)
                    ownedCapacity = c
                }
                if live > 0 { owned.copyMemory(from: storage + start, byteCount: live) }
                r.releaseAll()
                storage = owned
                capacity = ownedCapacity
                start = 0
                end = live
                continue
            }
            if start > 0 {
                let live = end - start
                if live > 0 { storage.copyMemory(from: storage + start, byteCount: live) }
                start = 0
                end = live
            }
            if end == capacity {
                guard capacity < maxCapacity else { return .success(false) }
                let grown = capacity > maxCapacity / 2 ? maxCapacity : capacity * 2
                let bigger = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 16)
                bigger.copyMemory(from: storage, byteCount: end)
                owned.deallocate()
                storage = bigger
                owned = bigger
                capacity = grown
                ownedCapacity = grown
            }
            switch fill(storage + end, capacity - end) {
            case .success(0): atEnd = true
            case .success(let got): end += got
            case .failure(let failure): return .failure(failure)
            }
        }
        return .success(true)
    }

    private mutating func fill(_ into: UnsafeMutableRawPointer, _ count: Int) -> Result<Int, Sys.Failure> {
        switch source {
        case .descriptor(let fd, _):
            return Sys.read(fd, into, count)
        case .readAhead(let r, _, _):
            if drained {
                // The last chunk was lent before copying began: its bytes are already in the buffer.
                if let f = pendingFailure {
                    pendingFailure = nil
                    return .failure(f)
                }
                return .success(0)
            }
            return r.read(into, count)
        case .memory(let memory):
            let n = min(count, memory.count - memoryPosition)
            if n > 0, let base = memory.baseAddress {
                into.copyMemory(from: base + memoryPosition, byteCount: n)
                memoryPosition += n
            }
            return .success(max(n, 0))
        }
    }
}
