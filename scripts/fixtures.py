#!/usr/bin/env python3
"""Writes the fixtures no tool makes for us (run from Tests/Fixtures by make-fixtures.sh):
- be-usec.pcap: lo-usec.pcap rewritten big-endian (editcap cannot swap byte order);
- synthetic.pcapng: two sections (little-endian, then big-endian) exercising if_tsresol in both forms,
  if_tsoffset, if_name, Simple and obsolete Packet Blocks, comments, skipped NRB/unknown blocks, ISB drops;
- port-reuse.pcap: one 4-tuple reused with the roles swapped, then a SYN and a SYN/ACK repeated (stream numbering);
- icmp-variants.pcap: every ICMP and ICMPv6 type and code tcpdump names, whole and cut short (real ones are in
  icmp-errors.pcap, made by icmp-fixture.sh);
- null-loopback.pcap: lo-usec.pcap as a BSD loopback (DLT_NULL) capture, plus IPv6 with the BSD and Darwin families;
- display-flags.pcap: what tcpdump's -v, -e, -x and -A show that no capture here has: right checksums, IP options,
  ECN, fragments, a VLAN tag, a reset with text, urgent data, IPv6 traffic classes and flow labels, an ICMP error
  with an RFC 4884 extension, and a timestamp that goes backwards;
- malformed/*: hand-made broken files (see the comment next to each)."""
import struct, os

def be_pcap(src, dst):
    d = open(src, 'rb').read()
    magic, vmaj, vmin, zone, sig, snap, lt = struct.unpack('<IHHiIII', d[:24])
    out = [struct.pack('>IHHiIII', magic, vmaj, vmin, zone, sig, snap, lt)]
    o = 24
    while o < len(d):
        s, us, incl, orig = struct.unpack('<IIII', d[o:o + 16])
        out.append(struct.pack('>IIII', s, us, incl, orig) + d[o + 16:o + 16 + incl])
        o += 16 + incl
    open(dst, 'wb').write(b''.join(out))

def pad(b):
    return b + b'\0' * (-len(b) % 4)

def opt(e, code, val):
    return struct.pack(e + 'HH', code, len(val)) + pad(val)

def opts(e, *items):
    return b''.join(items) + struct.pack(e + 'HH', 0, 0) if items else b''

def block(e, btype, body):
    n = 12 + len(body)
    return struct.pack(e + 'II', btype, n) + body + struct.pack(e + 'I', n)

def shb(e, options=b''):
    return block(e, 0x0A0D0D0A, struct.pack(e + 'IHHq', 0x1A2B3C4D, 1, 0, -1) + options)

def idb(e, linktype, snaplen, options=b''):
    return block(e, 1, struct.pack(e + 'HHI', linktype, 0, snaplen) + options)

def epb(e, ifid, ts, data, orig=None, options=b''):
    orig = len(data) if orig is None else orig
    return block(e, 6, struct.pack(e + 'IIIII', ifid, ts >> 32, ts & 0xFFFFFFFF, len(data), orig) + pad(data) + options)

def pkt(n, fill):
    return bytes([fill]) * n

def synthetic():
    L, B = '<', '>'
    s = []
    s.append(shb(L, opts(L, opt(L, 4, b'fixtures.py'))))
    # Interface 0: Ethernet, snaplen 40, default resolution (microseconds), if_tsoffset 100 s.
    s.append(idb(L, 1, 40, opts(L, opt(L, 2, b'eth-test'), opt(L, 14, struct.pack('<q', 100)))))
    # Interface 1: RAW, snaplen 0 (unlimited), 2^-10 s units.
    s.append(idb(L, 101, 0, opts(L, opt(L, 2, b'raw0'), opt(L, 9, b'\x8a'))))
    # Frame 1: interface 0, 1700000000.250000 s (+100 s offset), one comment, plus epb_flags.
    s.append(epb(L, 0, 1700000000 * 1000000 + 250000, pkt(30, 0x11), 30,
                 opts(L, opt(L, 1, 'héllo'.encode()), opt(L, 2, struct.pack('<I', 1)))))
    s.append(block(L, 4, struct.pack('<HH', 0, 0)))           # Name Resolution Block: skipped
    s.append(block(L, 0x0BADF00D, b'unknown!'))               # unknown block: skipped
    # Frame 2: Simple Packet Block, 100 bytes on the wire, interface 0's snaplen 40 cuts it.
    s.append(block(L, 3, struct.pack('<I', 100) + pkt(40, 0x22)))
    # Frame 3: interface 1, 1700000001 + 512/1024 s.
    s.append(epb(L, 1, 1700000001 * 1024 + 512, pkt(21, 0x33), 60))
    # Frame 4: obsolete Packet Block on interface 1, drops 0, 1700000002 + 256/1024 s, two comments.
    s.append(block(L, 2, (
                   struct.pack("<HHIIII", 1, 0, (1700000002 * 1024 + 256) >> 32,
                                      (1700000002 * 1024 + 256) & 0xFFFFFFFF, 5, 5)
                   + pad(pkt(5, 0x44)) + opts(L, opt(L, 1, b"old"), opt(L, 1, b"block")))))
    # Interface Statistics Block for interface 0: isb_ifrecv 10, isb_ifdrop 7.
    s.append(block(L, 5, struct.pack('<III', 0, 0, 0) +
                   opts(L, opt(L, 4, struct.pack('<Q', 10)), opt(L, 5, struct.pack('<Q', 7)))))
    # Section 2, big-endian: interface 2 overall (0 in the section), Ethernet, nanoseconds (if_tsresol 9).
    s.append(shb(B))
    s.append(idb(B, 1, 65535, opts(B, opt(B, 2, b'be0'), opt(B, 9, b'\x09'))))
    s.append(epb(B, 0, 1700000003 * 10**9 + 123456789, pkt(14, 0x55)))
    s.append(epb(B, 0, 1700000004 * 10**9 + 1, pkt(3, 0x66), 9,
                 opts(B, opt(B, 1, b'big'), opt(B, 1, b'endian'))))
    open('synthetic.pcapng', 'wb').write(b''.join(s))

def checksum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff

def ipv4(src, dst, proto, payload, total=None, ttl=64, ident=1):
    total = 20 + len(payload) if total is None else total
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, total, ident, 0x4000, ttl, proto, 0, bytes(src), bytes(dst))
    return h[:10] + struct.pack('!H', checksum(h)) + h[12:] + payload

def tcp(sport, dport, seq, ack, flags, data=b''):
    return struct.pack('!HHIIBBHHH', sport, dport, seq, ack, 5 << 4, flags, 1000, 0, 0) + data

def udp(sport, dport, data):
    return struct.pack('!HHHH', sport, dport, 8 + len(data), 0) + data

def ipv6(src, dst, next_header, payload, payload_length=None):
    payload_length = len(payload) if payload_length is None else payload_length
    return struct.pack('!IHBB16s16s', 0x60000000, payload_length, next_header, 64, bytes(src), bytes(dst)) + payload

def ether(ethertype, payload):
    return b'\x02\0\0\0\0\x02' + b'\x02\0\0\0\0\x01' + struct.pack('!H', ethertype) + payload

def pcap(name, records, linktype=1):
    """records: (data, original length) pairs, one second apart from 1700000000 s."""
    out = [struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, linktype)]
    for i, (data, orig) in enumerate(records):
        out.append(struct.pack('<IIII', 1700000000 + i, i, len(data), orig) + data)
    open(name, 'wb').write(b''.join(out))

def port_reuse():
    a, b = [10, 0, 0, 1], [10, 0, 0, 2]
    S, A, F, R = 2, 16, 1, 4
    def seg(src, dst, sport, dport, seq, ack, flags):
        return ether(0x800, ipv4(src, dst, 6, tcp(sport, dport, seq, ack, flags)))
    frames = [
        # a:1000 -> b:2000, closed by FINs.
        seg(a, b, 1000, 2000, 100, 0, S), seg(b, a, 2000, 1000, 500, 101, S | A), seg(a, b, 1000, 2000, 101, 501, A),
        seg(a, b, 1000, 2000, 101, 501, F | A), seg(b, a, 2000, 1000, 501, 102, F | A),
        seg(a, b, 1000, 2000, 102, 502, A),
        # The same 4-tuple, roles swapped: b connects to a with a new ISN (a new stream), ended by a reset.
        seg(b, a, 2000, 1000, 9000, 0, S), seg(a, b, 1000, 2000, 7000, 9001, S | A),
        seg(b, a, 2000, 1000, 9001, 7001, A), seg(b, a, 2000, 1000, 9001, 7001, R | A),
        # a connects again (a third stream); its SYN is then repeated with the same ISN (a retransmission), and a
        # SYN/ACK with another ISN restarts b's numbering.
        seg(a, b, 1000, 2000, 300, 0, S), seg(b, a, 2000, 1000, 800, 301, S | A), seg(a, b, 1000, 2000, 300, 0, S),
        seg(b, a, 2000, 1000, 1234, 301, S | A),
    ]
    pcap('port-reuse.pcap', [(f, len(f)) for f in frames])

def icmp_variants():
    a, b, c = [10, 0, 0, 1], [10, 0, 0, 2], [192, 0, 2, 9]
    a6, b6 = [0xfd] + [0] * 14 + [1], [0xfd] + [0] * 14 + [2]
    def icmp4(type_, code, rest=b'\0\0\0\0', body=b''):
        return ether(0x800, ipv4(b, a, 1, struct.pack('!BBH', type_, code, 0) + rest + body, ident=7))
    def icmp6(type_, code, rest=b'\0\0\0\0', body=b''):
        m = struct.pack('!BBH', type_, code, 0) + rest + body
        return ether(0x86dd, ipv6(b6, a6, 58, m))
    # The datagrams the errors quote: UDP, TCP and another protocol over IPv4; UDP and TCP over IPv6, one behind
    # a hop-by-hop and a fragment header.
    q_udp = ipv4(a, c, 17, udp(40000, 5000, b'ping'))
    q_tcp = ipv4(a, c, 6, tcp(40001, 80, 1, 0, 2))
    q_gre = ipv4(a, c, 47, b'\0' * 8)
    q_opts = bytes([0x46]) + ipv4(a, c, 17, udp(40000, 5001, b''))[1:20] + b'\x01\x01\x01\x00' + udp(40000, 5001, b'')
    q6_udp = ipv6(a6, [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [9], 17, udp(40000, 5000, b'ping'))
    q6_tcp = ipv6(a6, [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [9], 6, tcp(40001, 443, 1, 0, 2))
    q6_ext = ipv6(a6, [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [9], 0,
                  bytes([44, 0, 1, 4, 0, 0, 0, 0]) + bytes([17, 0, 0, 1, 0, 0, 0, 42]) + udp(40000, 5002, b''))
    q6_esp = ipv6(a6, [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [9], 50, b'\0' * 16)
    frames = [icmp4(8, 0, struct.pack('!HH', 77, 1)), icmp4(0, 0, struct.pack('!HH', 77, 1))]
    for code in range(17):
        frames.append(icmp4(3, code, struct.pack('!HH', 0, 1400 if code == 4 else 0), q_udp))
    frames += [icmp4(3, 4, b'\0' * 4, q_udp), icmp4(3, 3, b'\0' * 4, q_tcp), icmp4(3, 3, b'\0' * 4, q_gre),
               icmp4(3, 3, b'\0' * 4, q_opts), icmp4(4, 0, b'\0' * 4, q_udp)]
    for code in range(5):
        frames.append(icmp4(5, code, bytes([10, 0, 0, 254]), q_udp))
    frames += [icmp4(9, 0, struct.pack('!BBH', 2, 2, 1800), struct.pack('!4sI4sI', bytes(b), 0, bytes(c), 5)),
               icmp4(9, 0, struct.pack('!BBH', 1, 2, 45), struct.pack('!4sI', bytes(b), 0)),
               icmp4(9, 0, struct.pack('!BBH', 1, 2, 9000), struct.pack('!4sI', bytes(b), 0)),
               icmp4(9, 0, struct.pack('!BBH', 1, 3, 9000)), icmp4(10, 0)]
    for code in range(3):
        frames.append(icmp4(11, code, b'\0' * 4, q_udp))
    frames += [icmp4(12, 0, bytes([20, 0, 0, 0]), q_udp), icmp4(12, 1, b'\0' * 4, q_udp),
               icmp4(13, 0, struct.pack('!HH', 5, 6), b'\0' * 12),
               icmp4(14, 0, struct.pack('!HH', 5, 6), struct.pack('!III', 45296789, 45296790, 86399999)),
               icmp4(15, 0), icmp4(16, 0), icmp4(17, 0), icmp4(18, 0, b'\0' * 4, bytes([255, 255, 255, 0])),
               icmp4(42, 1)]
    for code in range(8):
        frames.append(icmp6(1, code, b'\0' * 4, q6_udp))
    frames += [icmp6(1, 4, b'\0' * 4, q6_tcp), icmp6(1, 4, b'\0' * 4, q6_ext), icmp6(1, 4, b'\0' * 4, q6_esp),
               icmp6(2, 0, struct.pack('!I', 1280), q6_udp)]
    for code in range(3):
        frames.append(icmp6(3, code, b'\0' * 4, q6_udp))
    for code in range(5):
        frames.append(icmp6(4, code, struct.pack('!I', 40 if code == 0 else 6), q6_udp))
    frames += [icmp6(128, 0, struct.pack('!HH', 9, 3)), icmp6(129, 0, struct.pack('!HH', 9, 3)),
               icmp6(130, 0, struct.pack('!HH', 1000, 0), bytes(16)),
               icmp6(130, 0, struct.pack('!HH', 1000, 0), bytes([0xff, 2] + [0] * 13 + [0xfb]) + b'\x02\x7d\0\x02'
                     + bytes(32)),
               icmp6(131, 0, b'\0' * 4, bytes([0xff, 2] + [0] * 13 + [0xfb])), icmp6(132, 0, b'\0' * 4, bytes(16)),
               icmp6(133, 0), icmp6(134, 0, b'\x40\0\x07\x08', b'\0' * 8),
               icmp6(135, 0, b'\0' * 4, bytes(b6)), icmp6(136, 0, b'\x60\0\0\0', bytes(b6)),
               icmp6(137, 0, b'\0' * 4, bytes(b6) + bytes([0x20, 1, 0xd, 0xb8] + [0] * 11 + [9])),
               icmp6(141, 0), icmp6(143, 0, b'\0\0\0\x02', bytes(40)), icmp6(144, 0, b'\x12\x34\0\0'),
               icmp6(146, 0, b'\xab\xcd\0\0'), icmp6(250, 1, b'\1\2\3\4', b'\5\6\7')]
    records = [(f, len(f)) for f in frames]
    # Cut short by the snapshot length: within the quoted header, within the ICMP header, and an ICMPv6 error
    # whose quoted extension headers end before the ports.
    for f in (icmp4(3, 3, b'\0' * 4, q_udp), icmp4(3, 1, b'\0' * 4, q_udp), icmp4(11, 0, b'\0' * 4, q_udp),
              icmp4(8, 0, struct.pack('!HH', 1, 1))):
        records += [(f[:14 + 20 + 8 + 12], len(f)), (f[:14 + 20 + 3], len(f))]
    for f in (icmp6(1, 4, b'\0' * 4, q6_ext), icmp6(1, 0, b'\0' * 4, q6_udp), icmp6(4, 1, b'\0' * 4, q6_udp)):
        records += [(f[:14 + 40 + 8 + 44], len(f)), (f[:14 + 40 + 1], len(f))]
    pcap('icmp-variants.pcap', records)

def malformed():
    os.makedirs('malformed', exist_ok=True)
    usec = open('lo-usec.pcap', 'rb').read()
    ng = open('comments.pcapng', 'rb').read()
    # Empty file.
    open('malformed/empty.pcap', 'wb').write(b'')
    # Unknown magic.
    open('malformed/bad-magic.pcap', 'wb').write(b'\xde\xad\xbe\xef' + usec[4:])
    # Header only, cut short.
    open('malformed/short-header.pcap', 'wb').write(usec[:20])
    # Two whole records, then the third cut in the middle of its data.
    o = 24
    for _ in range(2):
        o += 16 + struct.unpack('<I', usec[o + 8:o + 12])[0]
    open('malformed/truncated-record.pcap', 'wb').write(usec[:o + 16 + 10])
    # Two whole records, then a record whose incl_len is 0xFFFFFFF0.
    third = bytearray(usec[o:])
    third[8:12] = struct.pack('<I', 0xFFFFFFF0)
    open('malformed/huge-length.pcap', 'wb').write(usec[:o] + bytes(third))
    # pcapng: SHB, IDB, two EPBs, then an EPB whose block total length is 0x7FFFFFF0.
    L = '<'
    good = shb(L) + idb(L, 1, 65535) + epb(L, 0, 1, pkt(20, 1)) + epb(L, 0, 2, pkt(20, 2))
    bad = bytearray(epb(L, 0, 3, pkt(20, 3)))
    bad[4:8] = struct.pack('<I', 0x7FFFFFF0)
    open('malformed/absurd-block-length.pcapng', 'wb').write(good + bytes(bad))
    # pcapng: the third EPB's trailing length disagrees with its leading one.
    bad = bytearray(epb(L, 0, 3, pkt(20, 3)))
    bad[-4:] = struct.pack('<I', 16)
    open('malformed/length-mismatch.pcapng', 'wb').write(good + bytes(bad))
    # pcapng: the third EPB claims caplen 0xFFFFFFF0 inside a well-formed block.
    bad = bytearray(epb(L, 0, 3, pkt(20, 3)))
    bad[20:24] = struct.pack('<I', 0xFFFFFFF0)
    open('malformed/huge-caplen.pcapng', 'wb').write(good + bytes(bad))
    # pcapng: a real capture cut in the middle of its last block.
    open('malformed/truncated-block.pcapng', 'wb').write(ng[:len(ng) - 7])
    # pcapng: an EPB for interface 5, which was never described.
    open('malformed/unknown-interface.pcapng', 'wb').write(good + epb(L, 5, 3, pkt(20, 3)))

    # Files that read to the end, whose packets are wrong (tcpdump marks each):
    a, b = [10, 0, 0, 1], [10, 0, 0, 2]
    a6, b6 = [0xfd] + [0] * 14 + [1], [0xfd] + [0] * 14 + [2]
    hello = udp(40000, 5000, b'hello')
    # IP lengths that claim more than the wire carried: UDP and TCP over IPv4 (20 and 30 bytes missing), UDP over
    # IPv6 (20), a packet cut by the snapshot length whose header claims even more than its original 60 bytes
    # (34 missing), and, for contrast, a short UDP datagram in a padded Ethernet frame (nothing missing).
    frames = [
        (ether(0x800, ipv4(a, b, 17, hello, total=20 + len(hello) + 20)), None),
        (ether(0x800, ipv4(a, b, 6, tcp(40001, 5001, 1000, 2000, 0x18, b'hello'), total=20 + 25 + 30)), None),
        (ether(0x86dd, ipv6(a6, b6, 17, hello, payload_length=len(hello) + 20)), None),
        (ether(0x800, ipv4(a, b, 17, udp(40000, 5000, b'x' * 18), total=80)), 60),
        (ether(0x800, ipv4(a, b, 17, udp(40000, 5000, b'hi'))) + b'\0' * 16, None),
    ]
    records = []
    for frame, original in frames:
        records.append((frame[:50], original) if original else (frame, len(frame)))
    pcap('malformed/ip-length-beyond-packet.pcap', records)
    # Records whose lengths are impossible: an original length below the captured one, an original length of 0,
    # a captured length of 0; then a sound record.
    frame = ether(0x800, ipv4(a, b, 17, hello))
    pcap('malformed/len-below-caplen.pcap', [(frame, len(frame) - 10), (frame, 0), (b'', 60), (frame, len(frame))])
    # A link type neither tcpdump nor PacketFlow decodes (USER0, 147).
    pcap('malformed/unsupported-link.pcap', [(b'\x01\x02\x03hello world', 14), (bytes(range(40)), 40)], linktype=147)
    # pcapng: Ethernet, 802.11 and USER0 interfaces; only the first is decoded.
    frame = ether(0x800, ipv4(a, b, 17, hello))
    open('malformed/unsupported-link.pcapng', 'wb').write(
        shb(L) + idb(L, 1, 65535, opts(L, opt(L, 2, b'eth0'))) + idb(L, 105, 65535, opts(L, opt(L, 2, b'wlan0')))
        + idb(L, 147, 65535) + epb(L, 0, 1, frame) + epb(L, 1, 2, pkt(24, 0x80)) + epb(L, 2, 3, pkt(4, 7))
        + epb(L, 1, 4, pkt(30, 0x88)))

def pseudo_checksum(src, dst, proto, segment, v6=False):
    if v6:
        ph = bytes(src) + bytes(dst) + struct.pack('!IxxxB', len(segment), proto)
    else:
        ph = bytes(src) + bytes(dst) + struct.pack('!xBH', proto, len(segment))
    return checksum(ph + segment)

def with_checksum(segment, at, src, dst, proto, v6=False):
    """The segment with its checksum field (at `at`) computed over the pseudo-header."""
    s = segment[:at] + b'\0\0' + segment[at + 2:]
    return s[:at] + struct.pack('!H', pseudo_checksum(src, dst, proto, s, v6)) + s[at + 2:]

def ipv4_full(src, dst, proto, payload, tos=0, ttl=64, ident=1, flags=0x4000, options=b'', total=None):
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload) if total is None else total
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, tos, total, ident, flags, ttl, proto, 0, bytes(src), bytes(dst))
    h += options
    return h[:10] + struct.pack('!H', checksum(h)) + h[12:] + payload

def tcp_full(sport, dport, seq, ack, flags, data=b'', options=b'', window=65535, urgent=0):
    off = (20 + len(options)) // 4
    return struct.pack('!HHIIBBHHH', sport, dport, seq, ack, off << 4, flags, window, 0, urgent) + options + data

def null_loopback():
    """lo-usec.pcap as a DLT_NULL capture (a 4-byte AF_INET in little-endian instead of the Ethernet header), then
    IPv6 segments with the BSD (24) and Darwin (30) families."""
    d = open('lo-usec.pcap', 'rb').read()
    out = [struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 262144, 0)]
    o = 24
    last = 0
    while o < len(d):
        sec, usec, incl, orig = struct.unpack('<IIII', d[o:o + 16])
        data = d[o + 16 + 14:o + 16 + incl]
        out.append(struct.pack('<IIII', sec, usec, incl - 10, orig - 10) + struct.pack('<I', 2) + data)
        o += 16 + incl
        last = sec
    a6, b6 = [0xfd] + [0] * 14 + [1], [0xfd] + [0] * 14 + [2]
    for i, family in enumerate((24, 30)):
        seg = with_checksum(tcp_full(40000 + i, 443, 1000, 0, 2, options=b'\x02\x04\x05\xa0'), 16, a6, b6, 6, True)
        data = struct.pack('<I', family) + ipv6(a6, b6, 6, seg)
        out.append(struct.pack('<IIII', last + 1 + i, 250000, len(data), len(data)) + data)
    open('null-loopback.pcap', 'wb').write(b''.join(out))

def display_flags():
    a, b, c = [10, 0, 0, 1], [10, 0, 0, 2], [192, 0, 2, 9]
    a6, b6 = [0xfd] + [0] * 14 + [1], [0xfd] + [0] * 14 + [2]
    S, A, F, R, P, U = 2, 16, 1, 4, 8, 32
    def tcp4(sport, dport, seq, ack, flags, data=b'', options=b'', tos=0, urgent=0, ip_options=b''):
        seg = with_checksum(tcp_full(sport, dport, seq, ack, flags, data, options, urgent=urgent), 16, a, b, 6)
        return ether(0x800, ipv4_full(a, b, 6, seg, tos=tos, options=ip_options))
    def udp4(data, sum_ok=True, **ip):
        seg = udp(40000, 5000, data)
        if sum_ok:
            seg = with_checksum(seg, 6, a, b, 17)
        return ether(0x800, ipv4_full(a, b, 17, seg, **ip))
    syn_options = b'\x02\x04\x05\xb4\x04\x02\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x00\x01\x03\x03\x07'
    request = b'GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n\x00\x01tail\r'
    frames = [
        # Right TCP checksums: a SYN with options and ECN's CE in the TOS, data with CRLF lines (-A), urgent data,
        # a reset that says why (-v prints it).
        tcp4(40000, 5000, 1000, 0, S, options=syn_options, tos=0x03),
        tcp4(40000, 5000, 1001, 2001, P | A, request, tos=0x10),
        tcp4(40000, 5000, 1001 + len(request), 2001, P | A | U, b'!', urgent=1),
        tcp4(40000, 5000, 1002 + len(request), 2001, R | A, b'connection refused by the application'),
        tcp4(40000, 5000, 1002 + len(request), 2001, R, b'bye'),
        # UDP: right checksum, none (0), wrong; IP options (record route, timestamp, router alert, NOP, EOL); TTL 0;
        # the reserved ("evil") flag.
        udp4(b'ping'),
        udp4(b'zero', sum_ok=False),
        ether(0x800, ipv4_full(a, b, 17, udp(40000, 5000, b'bad!')[:6] + b'\x12\x34' + b'bad!')),
        udp4(b'rr', options=bytes([7, 11, 8]) + bytes(c) + bytes(b) + b'\x01'),
        udp4(b'ts', options=bytes([68, 12, 13, 0x01]) + bytes(c) + struct.pack('!I', 12345)),
        udp4(b'ra', options=bytes([148, 4, 0, 0])),
        udp4(b'nop', options=b'\x01\x01\x01\x00'),
        udp4(b'ttl0', ttl=0),
        udp4(b'evil', flags=0xc000),
        # A datagram in two fragments (the UDP length covers both), and a protocol nobody decodes.
        ether(0x800, ipv4_full(a, b, 17, with_checksum(udp(40000, 5000, b'x' * 24), 6, a, b, 17)[:16],
                               flags=0x2000, ident=77, total=36)),
        ether(0x800, ipv4_full(a, b, 17, b'x' * 16, flags=0x0002, ident=77)),
        ether(0x800, ipv4_full(a, b, 253, b'\x01\x02\x03')),
        # 802.1Q: VLAN 42, priority 5.
        b'\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x81\x00' + struct.pack('!HH', (5 << 13) | 42, 0x800)
        + ipv4_full(a, b, 17, with_checksum(udp(40000, 5000, b'vlan'), 6, a, b, 17)),
        # ICMP with a right checksum; an error with an RFC 4884 extension (one MPLS label) after 128 bytes of the
        # datagram it quotes.
        ether(0x800, ipv4_full(b, a, 1, (lambda m: m[:2] + struct.pack('!H', checksum(m)) + m[4:])(
            struct.pack('!BBHHH', 8, 0, 0, 9, 1) + b'abcdefgh'))),
    ]
    quoted = ipv4_full(a, c, 17, with_checksum(udp(40000, 33434, b'\0' * 12), 6, a, c, 17), ttl=1)
    quoted += b'\0' * (128 - len(quoted))
    label = struct.pack('!I', (16001 << 12) | (0 << 9) | 0x100 | 1)
    obj = struct.pack('!HBB', 4 + len(label), 1, 1) + label
    ext = struct.pack('!BBH', 0x20, 0, 0) + obj
    ext = ext[:2] + struct.pack('!H', checksum(ext)) + ext[4:]
    m = struct.pack('!BBHBBH', 11, 0, 0, 0, 32, 0) + quoted + ext
    m = m[:2] + struct.pack('!H', checksum(m)) + m[4:]
    frames.append(ether(0x800, ipv4_full(c, a, 1, m, ttl=250)))
    # IPv6: a traffic class and a flow label, TCP and UDP with right checksums, an echo request.
    def ip6(next_header, payload, vcf=0x6b812345):
        return ether(0x86dd, struct.pack('!IHBB16s16s', vcf, len(payload), next_header, 64, bytes(a6), bytes(b6))
                     + payload)
    frames += [
        ip6(6, with_checksum(tcp_full(40001, 5000, 7, 0, S), 16, a6, b6, 6, True)),
        ip6(17, with_checksum(udp(40001, 5000, b'six'), 6, a6, b6, 17, True), vcf=0x60000000),
        ip6(58, with_checksum(struct.pack('!BBHHH', 128, 0, 0, 3, 4) + b'echo', 2, a6, b6, 58, True), vcf=0x60000001),
    ]
    records = [(f, len(f)) for f in frames]
    out = [struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)]
    t = 1700000000
    for i, (data, orig) in enumerate(records):
        # Times advance by uneven steps; one goes back (-ttt prints a negative delta) and one crosses midnight UTC.
        sec, usec = t + i * 3, (i * 137_411) % 1_000_000
        if i == 5:
            sec -= 7
        if i == 12:
            sec = 1700006399
            usec = 999_999
        out.append(struct.pack('<IIII', sec, usec, len(data), orig) + data)
    open('display-flags.pcap', 'wb').write(b''.join(out))

if __name__ == '__main__':
    be_pcap('lo-usec.pcap', 'be-usec.pcap')
    synthetic()
    port_reuse()
    icmp_variants()
    malformed()
    null_loopback()
    display_flags()
