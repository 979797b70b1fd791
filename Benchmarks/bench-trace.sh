#!/bin/sh
# Overhead of `packetflow trace` against the untraced program and against strace on the same run.
# A socket-heavy workload (many small TCP exchanges on loopback) and a file-heavy one (open/write/read/close).
# Usage: Benchmarks/bench-trace.sh [packetflow binary]   (root: ptrace and capture)
set -eu
PF=${1:-.build-trace/release/packetflow}
[ -x "$PF" ] || PF=.build-trace/debug/packetflow
N=${N:-2000}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cat > "$T/sockets.py" <<PY
import socket, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(64); port = srv.getsockname()[1]
def serve():
    for _ in range($N):
        c, _ = srv.accept(); c.sendall(c.recv(64)); c.close()
t = threading.Thread(target=serve); t.start()
for i in range($N):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"ping"); s.recv(64); s.close()
t.join()
PY
cat > "$T/files.py" <<PY
for i in range($N * 10):
    with open("$T/f.txt", "w") as f: f.write("x" * 100)
    with open("$T/f.txt") as f: f.read()
PY

now() { date +%s.%N; }
run() { s=$(now); "$@" >/dev/null 2>&1; e=$(now); echo "$e - $s" | bc; }

for w in sockets files; do
    base=$(run python3 "$T/$w.py")
    pf=$(run "$PF" trace --no-capture --format jsonl -- python3 "$T/$w.py")
    pfc=$(run "$PF" trace --format jsonl -f "tcp port 1" -- python3 "$T/$w.py")
    st=$(run strace -f --seccomp-bpf -e trace=network -o /dev/null python3 "$T/$w.py")
    printf '%-8s untraced %6.2fs  packetflow %6.2fs (x%.1f)  packetflow+capture %6.2fs (x%.1f)  strace %6.2fs (x%.1f)\n' \
        "$w" "$base" "$pf" "$(echo "$pf / $base" | bc -l)" "$pfc" "$(echo "$pfc / $base" | bc -l)" \
        "$st" "$(echo "$st / $base" | bc -l)"
done
