#!/bin/sh
# Makes Tests/Fixtures/icmp-errors.pcap: the ICMP and ICMPv6 errors Linux really sends, captured with tcpdump.
# Needs root, ip(8), tcpdump and python3. It makes three network namespaces of its own (host A, router R, host B),
# lets A provoke every error it can, captures on A's side of the A-R link, and removes the namespaces again.
#
#   A 10.9.1.2 fd09:1::2 ── R 10.9.1.1 fd09:1::1 | 10.9.2.1 fd09:2::1 ── (MTU 1280) ── B 10.9.2.2 fd09:2::2
#
# R has no default route (net unreachable), an "unreachable" and a "prohibit" route for each family, and a route
# back through a gateway on A's own link (redirect). B keeps fragments for 1 s (reassembly time exceeded).
set -eu
out=$(cd "$(dirname "$0")/../Tests/Fixtures" && pwd)/${1:-icmp-errors.pcap}
A=pf-icmpfix-$$-a R=pf-icmpfix-$$-r B=pf-icmpfix-$$-b
capture=""
cleanup() {
    [ -n "$capture" ] && kill "$capture" 2>/dev/null
    for n in $A $R $B; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

for n in $A $R $B; do
    ip netns add "$n"
    ip -n "$n" link set lo up
    # Every error is wanted, however close together.
    ip netns exec "$n" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
done
ip -n $A link add veth0 type veth peer name veth-a netns $R
ip -n $B link add veth0 type veth peer name veth-b netns $R
ip -n $A addr add 10.9.1.2/24 dev veth0
ip -n $A addr add fd09:1::2/64 dev veth0 nodad
ip -n $R addr add 10.9.1.1/24 dev veth-a
ip -n $R addr add fd09:1::1/64 dev veth-a nodad
ip -n $R addr add 10.9.2.1/24 dev veth-b
ip -n $R addr add fd09:2::1/64 dev veth-b nodad
ip -n $B addr add 10.9.2.2/24 dev veth0
ip -n $B addr add fd09:2::2/64 dev veth0 nodad
ip -n $R link set veth-b mtu 1280
ip -n $B link set veth0 mtu 1280
for link in "$A veth0" "$R veth-a" "$R veth-b" "$B veth0"; do
    set -- $link
    ip -n "$1" link set "$2" up
done
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip netns exec $B sysctl -qw net.ipv4.ipfrag_time=1 net.ipv6.ip6frag_time=1
ip -n $A route add default via 10.9.1.1
ip -n $A -6 route add default via fd09:1::1
ip -n $B route add default via 10.9.2.1
ip -n $B -6 route add default via fd09:2::1
ip -n $R route add unreachable 10.9.50.0/24
ip -n $R route add prohibit 10.9.51.0/24
ip -n $R route add 10.9.60.0/24 via 10.9.1.3
ip -n $R -6 route add unreachable fd09:50::/64
ip -n $R -6 route add prohibit fd09:51::/64
ip -n $R -6 route add fd09:60::/64 via fe80::3 dev veth-a
sleep 1

ip netns exec $A tcpdump -q -U -i veth0 -w "$out" 'icmp or icmp6' 2>/dev/null &
capture=$!
sleep 1

ip netns exec $A python3 - <<'EOF'
import socket, struct, time

def udp(address, port=9, size=4, ttl=None, dont_fragment=False):
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    if ttl is not None:
        if family == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        else:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    if dont_fragment:
        if family == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
        else:
            s.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO
    s.sendto(b'x' * size, (address, port))
    time.sleep(0.2)
    s.close()

def checksum(b):
    b += b'\0' * (len(b) % 2)
    total = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    total = (total >> 16) + (total & 0xffff)
    return ~(total + (total >> 16)) & 0xffff

def raw4(header_extra, proto, payload, flags_fragment=0x4000, dst='10.9.2.2'):
    # A hand-made IPv4 datagram (IP_HDRINCL): options and fragment fields as given.
    ihl = 5 + len(header_extra) // 4
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, ihl * 4 + len(payload), 4242, flags_fragment, 64, proto, 0,
                    socket.inet_aton('10.9.1.2'), socket.inet_aton(dst)) + header_extra
    h = h[:10] + struct.pack('!H', checksum(h)) + h[12:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(h + payload, (dst, 0))
    time.sleep(0.2)
    s.close()

def raw6(next_header, payload, dst='fd09:2::2'):
    # A hand-made IPv6 datagram (IPPROTO_RAW sends the header as given).
    h = struct.pack('!IHBB16s16s', 0x60000000, len(payload), next_header, 64,
                    socket.inet_pton(socket.AF_INET6, 'fd09:1::2'), socket.inet_pton(socket.AF_INET6, dst))
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.sendto(h + payload, (dst, 0))
    time.sleep(0.2)
    s.close()

# Echo, for contrast.
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(struct.pack('!BBHHH', 8, 0, checksum(struct.pack('!BBHHH', 8, 0, 0, 7, 1)), 7, 1), ('10.9.2.2', 0))
time.sleep(0.2)
s.close()
# Port unreachable from B, over both families.
udp('10.9.2.2')
udp('fd09:2::2')
# Protocol unreachable (an IP protocol B has no handler for), and IPv6's unknown next header.
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 253)
s.sendto(b'abcd', ('10.9.2.2', 0))
time.sleep(0.2)
s.close()
raw6(253, b'abcdefgh')
# Time exceeded in transit at R.
udp('10.9.2.2', ttl=1)
udp('fd09:2::2', ttl=1)
# R's routes: none (net unreachable), unreachable, prohibit; for IPv6 no route, reject and prohibit. IPv4 allows a
# sender one such error a second, the first only after a second.
udp('10.9.99.1')
for address in ['10.9.99.1', '10.9.50.1', '10.9.51.1']:
    time.sleep(1.1)
    udp(address)
for address in ['fd09:99::1', 'fd09:50::1', 'fd09:51::1']:
    udp(address)
# Too big for the 1280-byte link to B: need to frag (DF set) and packet too big.
udp('10.9.2.2', size=1400, dont_fragment=True)
udp('fd09:2::2', size=1400)
# A bad IP option (a length of 1) at R: parameter problem pointing at it.
raw4(b'\x07\x01\x00\x00', 17, struct.pack('!HHHH', 40000, 9, 8, 0))
# IPv6 options B must refuse: an option type that asks for an error (0x9e), and a fragment whose length is not a
# multiple of 8 although more follow.
raw6(60, bytes([17, 0, 0x9e, 4, 0, 0, 0, 0]) + struct.pack('!HHHH', 40000, 9, 8, 0))
raw6(44, struct.pack('!BBHI', 17, 0, 1, 98) + struct.pack('!HHHH', 40000, 9, 13, 0) + b'x' * 5)
# The first fragment only: B gives up reassembling after 1 s.
raw4(b'', 17, struct.pack('!HHHH', 40000, 9, 24, 0) + b'x' * 8, flags_fragment=0x2000)
raw6(44, struct.pack('!BBHI', 17, 0, 1, 99) + struct.pack('!HHHH', 40000, 9, 24, 0) + b'x' * 8)
time.sleep(2)
# Nobody at these addresses on B's link: R's ARP and neighbour discovery fail (host/address unreachable).
udp('10.9.2.99')
udp('fd09:2::99')
time.sleep(4)
# A gateway on A's own link (IPv6: a link-local one): R redirects A to it, then cannot reach it either.
udp('10.9.60.1')
udp('fd09:60::1')
time.sleep(4)
EOF
sleep 1
kill "$capture"
wait "$capture" 2>/dev/null || true
capture=""
echo "wrote $out" >&2
