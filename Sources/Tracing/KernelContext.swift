import Timeline

/// The kernel's word over the content's. Attribution by content infers who sent a packet from its 4-tuple and
/// sequence numbers; an engine that watched the kernel build it (eBPF) knows. Where it does, that decides whether
/// a call put the packet on the wire; the content still says which call's bytes it carries and why a kernel sent
/// it.
enum KernelContext {
    /// Sets each packet's `context` and corrects its cause where the kernel saw otherwise:
    /// - built inside call #N on that call's own socket: call #N sent it (a pure ACK that recv(2) sent as it read,
    ///   not "a kernel on its own");
    /// - built elsewhere (a softirq, another socket's call) but inferred as a call's: the kernel sent that call's
    ///   bytes later (Nagle, a window, a handshake finished in NET_RX), linked to the call;
    /// - built while its process exited: the FIN or RST of a socket the exit closed;
    /// - built by a task that is not traced: the untraced peer's, whatever the content suggested.
    static func apply(_ contexts: [PacketContext?], to packets: inout [PacketEvent], calls: [CallEvent]) {
        let actors = Dictionary(uniqueKeysWithValues: calls.map { ($0.id, $0.actor) })
        for i in packets.indices where i < contexts.count {
            guard let context = contexts[i] else { continue }
            var p = packets[i]
            p.context = context
            switch context {
            case .call(let n, ownSocket: true):
                p.call = n
                p.kernel = nil
                if let actor = actors[n] { p.sender = actor }
            case .call(let n, ownSocket: false):
                if !p.byKernel, let c = p.call { p.kernel = .deferred(call: c, context: "during call #\(n)") }
            case .softirq(let name, _):
                if !p.byKernel, let c = p.call { p.kernel = .deferred(call: c, context: name) }
            case .afterCall(_, exiting: true):
                if p.flags?.contains(.rst) == true {
                    p.kernel = .resetAtExit
                } else if p.flags?.contains(.fin) == true {
                    p.kernel = .finAtExit
                }
            case .afterCall(_, exiting: false):
                break
            case .untraced:
                // Shown as the untraced peer's (the task is in the context).
                if p.call != nil || p.byKernel {
                    p.call = nil
                    p.kernel = nil
                    p.sender = p.sourceEndpoint?.description ?? p.sender
                }
            }
            packets[i] = p
        }
    }
}
