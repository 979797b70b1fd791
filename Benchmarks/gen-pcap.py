#!/usr/bin/env python3
"""Writes a synthetic Ethernet pcap (microsecond timestamps) with a realistic mix of traffic:
short TCP request/response connections (client ports wrap, so 4-tuples get reused), bulk transfers with
delayed ACKs, UDP request/response pairs, about 15% IPv6, and (with --anomalies) a lost segment followed by
duplicate ACKs and a fast retransmission, timeout retransmissions, zero windows and window updates.

    gen-pcap.py OUT.pcap [--packets N] [--seed S] [--anomalies]

Deterministic for a given seed. Checksums are left zero (neither tcpdump nor tshark checks them by default).
"""
import argparse
import random
import struct

ETH_V4 = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
ETH_V6 = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x86\xdd"


class Host:
    def __init__(self, v6, n):
        self.v6 = v6
        self.addr = (b"\xfd\x00" + b"\x00" * 12 + struct.pack(">H", n)) if v6 else bytes([10, 0, n >> 8, n & 255])


def ip_packet(src, dst, proto, payload):
    if src.v6:
        return ETH_V6 + struct.pack(">IHBB", 0x60000000, len(payload), proto, 64) + src.addr + dst.addr + payload
    total = 20 + len(payload)
    return ETH_V4 + struct.pack(">BBHHHBBH", 0x45, 0, total, 0, 0x4000, 64, proto, 0) + src.addr + dst.addr + payload


def tcp(src, dst, sport, dport, seq, ack, flags, win, data=b"", syn_opts=False):
    opts = b""
    if syn_opts:
        # mss 1460, nop, nop, sackOK, nop, wscale 7: 12 bytes.
        opts = struct.pack(">BBH", 2, 4, 1460) + b"\x01\x01\x04\x02\x01\x03\x03\x07"
    hl = (20 + len(opts)) // 4
    hdr = struct.pack(">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, hl << 4, flags, win, 0, 0)
    return ip_packet(src, dst, 6, hdr + opts + data)


def udp(src, dst, sport, dport, data):
    return ip_packet(src, dst, 17, struct.pack(">HHHH", sport, dport, 8 + len(data), 0) + data)


FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16
TEXT = b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nUser-Agent: gen\r\n\r\n" + "こんにちは".encode()


def short_conn(rng, c, s, cport, sport):
    ci, si = rng.getrandbits(32), rng.getrandbits(32)
    req = TEXT[: rng.randint(20, len(TEXT))]
    resp = bytes(rng.getrandbits(8) for _ in range(16)) * rng.randint(1, 80)
    yield tcp(c, s, cport, sport, ci, 0, SYN, 64240, syn_opts=True)
    yield tcp(s, c, sport, cport, si, ci + 1, SYN | ACK, 65160, syn_opts=True)
    yield tcp(c, s, cport, sport, ci + 1, si + 1, ACK, 502)
    yield tcp(c, s, cport, sport, ci + 1, si + 1, PSH | ACK, 502, req)
    yield tcp(s, c, sport, cport, si + 1, ci + 1 + len(req), ACK, 509)
    yield tcp(s, c, sport, cport, si + 1, ci + 1 + len(req), PSH | ACK, 509, resp)
    yield tcp(c, s, cport, sport, ci + 1 + len(req), si + 1 + len(resp), ACK, 501)
    yield tcp(c, s, cport, sport, ci + 1 + len(req), si + 1 + len(resp), FIN | ACK, 501)
    yield tcp(s, c, sport, cport, si + 1 + len(resp), ci + 2 + len(req), FIN | ACK, 509)
    yield tcp(c, s, cport, sport, ci + 2 + len(req), si + 2 + len(resp), ACK, 501)


def bulk(rng, c, s, cport, sport, segments, anomalies):
    ci, si = rng.getrandbits(32), rng.getrandbits(32)
    mss = 1448
    chunk = bytes(rng.getrandbits(8) for _ in range(mss))
    yield tcp(c, s, cport, sport, ci, 0, SYN, 64240, syn_opts=True)
    yield tcp(s, c, sport, cport, si, ci + 1, SYN | ACK, 65160, syn_opts=True)
    yield tcp(c, s, cport, sport, ci + 1, si + 1, ACK, 502)
    yield tcp(c, s, cport, sport, ci + 1, si + 1, PSH | ACK, 502, b"SEND")
    a = ci + 5
    nxt = si + 1
    acked = si + 1
    lost = rng.randint(4, max(5, segments - 6)) if anomalies else -1
    stall = rng.randint(2, max(3, segments - 3)) if anomalies else -1
    swap = rng.randint(1, max(2, segments - 3)) if anomalies else -1
    i = 0
    while i < segments:
        if i == lost:
            # This segment never reaches the capture point: the next one shows a gap, the client
            # sends duplicate ACKs, then the server retransmits the lost one.
            missing = nxt
            nxt += mss
            yield tcp(s, c, sport, cport, nxt, a, ACK, 509, chunk)
            nxt += mss
            for _ in range(3):
                yield tcp(c, s, cport, sport, a, acked, ACK, 501)
            yield tcp(s, c, sport, cport, missing, a, ACK, 509, chunk)
            acked = nxt
            yield tcp(c, s, cport, sport, a, acked, ACK, 501)
            i += 2
            continue
        if i == swap and i + 1 < segments and lost not in (i, i + 1) and stall not in (i, i + 1):
            # Two segments arrive swapped, close together: out of order.
            yield tcp(s, c, sport, cport, nxt + mss, a, ACK, 509, chunk)
            yield tcp(s, c, sport, cport, nxt, a, ACK, 509, chunk)
            nxt += 2 * mss
            acked = nxt
            yield tcp(c, s, cport, sport, a, acked, ACK, 501)
            i += 2
            continue
        if i == stall:
            yield tcp(s, c, sport, cport, nxt, a, ACK, 509, chunk)
            nxt += mss
            acked = nxt
            yield tcp(c, s, cport, sport, a, acked, ACK, 0)  # zero window
            yield tcp(c, s, cport, sport, a, acked, ACK, 501)  # window update
            i += 1
            continue
        yield tcp(s, c, sport, cport, nxt, a, ACK, 509, chunk)
        nxt += mss
        if i % 2 == 1:
            acked = nxt
            yield tcp(c, s, cport, sport, a, acked, ACK, 501)
        i += 1
    if anomalies:
        # A timeout retransmission of the last segment (its ACK had been seen: a spurious one).
        yield tcp(s, c, sport, cport, nxt - mss, a, ACK, 509, chunk)
        # An idle client probes with a keep-alive (one byte below its next sequence number).
        yield tcp(c, s, cport, sport, a - 1, nxt, ACK, 501)
    yield tcp(s, c, sport, cport, nxt, a, FIN | ACK, 509)
    yield tcp(c, s, cport, sport, a, nxt + 1, FIN | ACK, 501)
    yield tcp(s, c, sport, cport, nxt + 1, a + 1, ACK, 509)


def udp_pairs(rng, c, s, cport, sport, n):
    for _ in range(n):
        q = TEXT[: rng.randint(10, 60)]
        yield udp(c, s, cport, sport, q)
        yield udp(s, c, sport, cport, bytes(rng.getrandbits(8) for _ in range(rng.randint(40, 400))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--anomalies", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    v4 = [Host(False, n) for n in range(1, 200)]
    v6 = [Host(True, n) for n in range(1, 50)]
    next_port = [32768]

    def new_flow():
        hosts = v6 if rng.random() < 0.15 else v4
        c, s = rng.sample(hosts, 2)
        cport = next_port[0]
        # Wrap within a small range so 4-tuples are reused by later connections, as on a busy client.
        next_port[0] = 32768 + (next_port[0] - 32768 + 1) % 2000
        r = rng.random()
        if r < 0.6:
            return short_conn(rng, c, s, cport, 4000)
        if r < 0.8:
            return bulk(rng, c, s, cport, 443, rng.randint(8, 60), args.anomalies and rng.random() < 0.5)
        return udp_pairs(rng, c, s, cport, 9999, rng.randint(1, 6))

    active = [new_flow() for _ in range(6)]
    t = 1_700_000_000 * 1_000_000
    written = 0
    with open(args.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        while written < args.packets:
            k = rng.randrange(len(active))
            try:
                p = next(active[k])
            except StopIteration:
                active[k] = new_flow()
                continue
            t += rng.randint(1, 120)
            f.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(p), len(p)))
            f.write(p)
            written += 1


if __name__ == "__main__":
    main()
