import Glibc

// The address type is PacketWire's, so a socket's address and a packet's address compare directly.
@_exported import enum PacketWire.IPAddress

extension IPAddress {
    public static let loopbackV4 = IPAddress.v4(0x7F00_0001)
    public static let anyV4 = IPAddress.v4(0)
    public static let loopbackV6 = IPAddress.v6(0, 1)
    public static let anyV6 = IPAddress.v6(0, 0)

    /// Builds an address from its bytes in written (network) order: 4 bytes for IPv4, 16 for IPv6.
    public init?(bytes: some Collection<UInt8>) {
        let bytes = Array(bytes)
        switch bytes.count {
        case 4:
            self = .v4(bytes.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            let high = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            self = .v6(high, low)
        default:
            return nil
        }
    }

    /// The bytes in written (network) order.
    public var bytes: [UInt8] {
        switch self {
        case .v4(let value):
            return (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
        case .v6(let high, let low):
            return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }

    /// `AF_INET` or `AF_INET6`.
    public var family: Int32 {
        switch self {
        case .v4: AF_INET
        case .v6: AF_INET6
        }
    }

    public var isIPv4: Bool {
        if case .v4 = self { return true }
        return false
    }

    init(_ raw: in_addr) {
        self = .v4(UInt32(bigEndian: raw.s_addr))
    }

    init(_ raw: in6_addr) {
        var raw = raw
        let bytes = withUnsafeBytes(of: &raw) { Array($0) }
        self.init(bytes: bytes)!
    }

    var inAddr: in_addr {
        guard case .v4(let value) = self else { return in_addr() }
        return in_addr(s_addr: value.bigEndian)
    }

    var in6Addr: in6_addr {
        var raw = in6_addr()
        let bytes = self.bytes
        guard bytes.count == 16 else { return raw }
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        return raw
    }
}

/// An IP address and a port: the two ends of a TCP connection or a UDP exchange.
///
/// Text form is `127.0.0.2:49152` for IPv4 and `[::1]:49152` for IPv6, both when parsing and when printing,
/// so `SocketAddress(parsing: address.description) == address` always holds.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Why a text could not be read as a socket address.
    public enum ParseError: Error, Hashable, Sendable, CustomStringConvertible {
        /// The host part is not a numeric IPv4/IPv6 address.
        case invalidAddress(String)
        /// The port is not a number in 0...65535.
        case invalidPort(String)
        /// There is no port and no default port was given.
        case missingPort(String)

        public var description: String {
            switch self {
            case .invalidAddress(let text):
                "'\(text)' is not an IPv4 or IPv6 address (expected e.g. 127.0.0.2:49152 or [::1]:49152)"
            case .invalidPort(let text): "'\(text)' is not a port number (0-65535)"
            case .missingPort(let text): "'\(text)' has no port (expected e.g. 127.0.0.2:49152)"
            }
        }
    }

    /// Parses `127.0.0.2:49152`, `[::1]:49152`, or — when `defaultPort` is given — a bare `127.0.0.2`, `::1` or
    /// `[::1]`.
    public init(parsing text: String, defaultPort: UInt16? = nil) throws(ParseError) {
        let host: Substring
        let portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .invalidAddress(text) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                portText = nil
            } else if rest.hasPrefix(":") {
                portText = rest.dropFirst()
            } else {
                throw .invalidAddress(text)
            }
            guard host.contains(":") else { throw .invalidAddress(text) }
        } else {
            let colons = text.count(where: { $0 == ":" })
            if colons == 0 {
                host = text[...]
                portText = nil
            } else if colons == 1 {
                let colon = text.firstIndex(of: ":")!
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
            } else {
                // Bare IPv6: a port cannot be told apart from the last group, so there is none.
                host = text[...]
                portText = nil
            }
        }
        guard let ip = IPAddress(String(host)) else { throw .invalidAddress(text) }
        let port: UInt16
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = UInt16(portText)
            else { throw .invalidPort(String(portText)) }
            port = value
        } else if let defaultPort {
            port = defaultPort
        } else {
            throw .missingPort(text)
        }
        self.init(ip: ip, port: port)
    }

    public var description: String { IPAddress.describe(ip, port: port) }

    /// `AF_INET` or `AF_INET6`.
    public var family: Int32 { ip.family }

    /// Reads an `AF_INET` or `AF_INET6` address; nil for any other family (e.g. `AF_UNIX`, or `AF_UNSPEC` from an
    /// unconnected socket).
    public init?(storage: sockaddr_storage) {
        var storage = storage
        let family = Int32(storage.ss_family)
        let decoded: SocketAddress? = withUnsafeBytes(of: &storage) { raw in
            switch family {
            case AF_INET:
                let sin = raw.loadUnaligned(as: sockaddr_in.self)
                return SocketAddress(ip: IPAddress(sin.sin_addr), port: UInt16(bigEndian: sin.sin_port))
            case AF_INET6:
                let sin6 = raw.loadUnaligned(as: sockaddr_in6.self)
                return SocketAddress(ip: IPAddress(sin6.sin6_addr), port: UInt16(bigEndian: sin6.sin6_port))
            default:
                return nil
            }
        }
        guard let decoded else { return nil }
        self = decoded
    }

    /// The address as a `sockaddr_storage` holding a `sockaddr_in` or `sockaddr_in6`.
    public var storage: sockaddr_storage {
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            switch ip {
            case .v4:
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_port = port.bigEndian
                sin.sin_addr = ip.inAddr
                withUnsafeBytes(of: &sin) { raw.copyMemory(from: $0) }
            case .v6:
                var sin6 = sockaddr_in6()
                sin6.sin6_family = sa_family_t(AF_INET6)
                sin6.sin6_port = port.bigEndian
                sin6.sin6_addr = ip.in6Addr
                withUnsafeBytes(of: &sin6) { raw.copyMemory(from: $0) }
            }
        }
        return storage
    }

    /// The length the kernel expects alongside ``storage``: `sizeof(sockaddr_in)` or `sizeof(sockaddr_in6)`.
    public var length: socklen_t {
        switch ip {
        case .v4: socklen_t(MemoryLayout<sockaddr_in>.size)
        case .v6: socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    /// Calls `body` with the address as a `sockaddr` pointer and its length, as `bind(2)` and `connect(2)` want.
    public func withSockAddr<Result, Failure: Error>(
        _ body: (UnsafePointer<sockaddr>, socklen_t) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        var storage = self.storage
        let length = self.length
        return try withUnsafePointer(to: &storage) { (pointer) throws(Failure) -> Result in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { (address) throws(Failure) -> Result in
                try body(address, length)
            }
        }
    }
}
