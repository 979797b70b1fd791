#!/bin/sh
# Regenerates the capture fixtures in Tests/Fixtures (needs root, tcpdump, dumpcap, editcap, mergecap,
# python3).
# The committed fixtures are what the tests assert against; re-running this changes timestamps,
# so the expected values in Tests/PacketFilesTests must be re-recorded with tshark afterwards.
set -eu
cd "$(dirname "$0")/../Tests/Fixtures"

exchange() {
    # One tiny TCP exchange on 127.0.0.1:$1.
    python3 -c "
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $1)); s.listen(1)
def serve():
    c, _ = s.accept(); d = c.recv(100); c.sendall(b'pong:' + d); c.close()
t = threading.Thread(target=serve); t.start()
k = socket.create_connection(('127.0.0.1', $1)); k.sendall(b'ping'); k.recv(100); k.close(); t.join()
"
}

capture() { # out-file port tcpdump-args...
    out=$1; port=$2; shift 2
    tcpdump -q -U "$@" -w "$out" "tcp port $port" 2>/dev/null &
    pid=$!
    sleep 1; exchange "$port"; sleep 1
    kill "$pid"; wait "$pid" || true
}

capture_two() { # out-file port: one connection seen on lo and on any at once, as dumpcap writes it (two named IDBs)
    dumpcap -q -f "tcp port $2" -i lo -i any -w "$1" 2>/dev/null &
    pid=$!
    sleep 2; exchange "$2"; sleep 1
    kill "$pid"; wait "$pid" || true
}

capture lo-usec.pcap 45601 -i lo
capture lo-nsec.pcap 45602 -i lo --time-stamp-precision=nano
capture any-sll2.pcap 45603 -i any
capture any-sll.pcap 45604 -i any -y LINUX_SLL
mergecap -F pcapng -w two-interfaces.pcapng lo-usec.pcap any-sll2.pcap
capture_two same-connection-two-interfaces.pcapng 45605
editcap -F pcapng -a "1:first comment" -a "3:third packet" -a "3:second comment on three" lo-nsec.pcap comments.pcapng
python3 ../../scripts/fixtures.py
sh ../../scripts/icmp-fixture.sh
