import CPcap
import Glibc

// tcpdump's capture flags that need libpcap: -D (the interfaces) and -Q (the direction).

/// An interface libpcap can capture on, as `pcap_findalldevs(3PCAP)` describes it.
public struct CaptureInterface: Sendable, Equatable {
    public var name: String
    public var description: String?
    /// `PCAP_IF_*` bits: up, running, loopback, wireless, and the connection status.
    public var flags: UInt32

    public init(name: String, description: String?, flags: UInt32) {
        self.name = name
        self.description = description
        self.flags = flags
    }

    /// The interfaces in libpcap's order (the one tcpdump -D numbers), or one line saying why there are none.
    public static func all() throws(CaptureError) -> [CaptureInterface] {
        var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        var list: UnsafeMutablePointer<pcap_if_t>?
        guard pcap_findalldevs(&list, &errbuf) == 0 else {
            let message = String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CaptureError(.other, "cannot list the interfaces: \(message)")
        }
        defer { pcap_freealldevs(list) }
        var result: [CaptureInterface] = []
        var next = list
        while let device = next {
            result.append(
                CaptureInterface(
                    name: String(cString: device.pointee.name),
                    description: device.pointee.description.map { String(cString: $0) },
                    flags: device.pointee.flags))
            next = device.pointee.next
        }
        return result
    }

    /// tcpdump -D's line for the interface numbered `number` (from 1): "3.lo [Up, Running, Loopback]".
    public func tcpdumpLine(number: Int) -> String {
        var line = "\(number).\(name)"
        if let description { line += " (\(description))" }
        guard flags != 0 else { return line }
        let names = [
            (UInt32(PCAP_IF_UP), "Up"), (UInt32(PCAP_IF_RUNNING), "Running"),
            (UInt32(PCAP_IF_LOOPBACK), "Loopback"), (UInt32(PCAP_IF_WIRELESS), "Wireless"),
        ]
        .filter { flags & $0.0 != 0 }.map(\.1)
        line += " [" + (names.isEmpty ? "none" : names.joined(separator: ", "))
        let wireless = flags & UInt32(PCAP_IF_WIRELESS) != 0
        switch flags & UInt32(PCAP_IF_CONNECTION_STATUS) {
        case UInt32(PCAP_IF_CONNECTION_STATUS_UNKNOWN):
            line += wireless ? ", Association status unknown" : ", Connection status unknown"
        case UInt32(PCAP_IF_CONNECTION_STATUS_CONNECTED):
            line += wireless ? ", Associated" : ", Connected"
        case UInt32(PCAP_IF_CONNECTION_STATUS_DISCONNECTED):
            line += wireless ? ", Not associated" : ", Disconnected"
        default:
            break
        }
        return line + "]"
    }
}

/// Which packets a live capture keeps (tcpdump -Q): those the interface received, sent, or both.
public enum CaptureDirection: String, Sendable, CaseIterable {
    case `in`, out, `inout`
}

extension LiveCapture {
    /// `pcap_setdirection(3PCAP)`: from now on, only packets of `direction`.
    public func setDirection(_ direction: CaptureDirection) throws(CaptureError) {
        let d: pcap_direction_t =
            switch direction {
            case .in: PCAP_D_IN
            case .out: PCAP_D_OUT
            case .inout: PCAP_D_INOUT
            }
        guard pcap_setdirection(handle, d) == 0 else {
            let detail = String(cString: pcap_geterr(handle))
            throw CaptureError(
                .other, "cannot keep only the \(direction.rawValue) packets of \(options.interface): \(detail)")
        }
    }
}
