import Sockets
import Timeline

extension LabScenario {
    /// The seed over IPv6 loopback: same calls, same packets, 40-byte IP headers and an MSS 20 bytes smaller.
    public static let ipv6 = LabScenario(
        name: "ipv6",
        summary: "the seed over ::1 (IPv6 loopback)",
        summaryJa: "元記事の実験を ::1 (IPv6 ループバック) で",
        prepare: { config in
            if !config.server.ip.isIPv6 {
                config.server = SocketAddress(ip: .loopbackV6, port: config.server.port)
                config.clientIP = .loopbackV6
            }
        },
        body: { (lab, config) throws(LabError) in try LabScenario.basic.body(lab, config) }
    )
}
