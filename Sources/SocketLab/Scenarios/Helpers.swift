import Sockets
import SystemCalls
import Timeline

extension LabSession {
    /// `recv(2)` as a step: the bytes, or nil when it failed (the errno is recorded in the step).
    @discardableResult
    func receive(_ actor: String, _ socket: Socket, max: Int = 4096, note: LabText? = nil) -> [UInt8]? {
        try? step(actor, "recv", [("bufsize", .int(max))], note: note, result: { $0.count }) { () throws(Errno) in
            try socket.recv(max: max)
        }.get()
    }

    /// Receives until `count` bytes came or the peer closed (as a program reading a known length does).
    static func receiveAll(_ socket: Socket, count: Int) throws(Errno) -> Int {
        var total = 0
        while total < count {
            let chunk = try socket.recv(max: min(65536, count - total))
            if chunk.isEmpty { break }
            total += chunk.count
        }
        return total
    }

    func closeQuietly(_ actor: String, _ socket: Socket) {
        step(actor, "close") { () throws(Errno) in try socket.close() }
    }
}
