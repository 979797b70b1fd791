#!/bin/sh
# Overhead of `packetflow trace` against the untraced program and against strace, all in the same run.
# A socket-heavy workload (many small TCP exchanges on loopback) and a file-heavy one (open/write/read/close).
# Each configuration runs R times; the best (least disturbed) time counts, and ratios are over untraced.
# Usage: Benchmarks/bench-trace.sh [packetflow binary]   (root: ptrace and capture)
#   Without an argument it builds the release binary (swift build -c release --scratch-path $SCRATCH).
#   N=1000 R=3 SCRATCH=.build Benchmarks/bench-trace.sh
set -eu
N=${N:-1000}
R=${R:-3}
if [ $# -ge 1 ]; then
    PF=$1
else
    SCRATCH=${SCRATCH:-.build}
    swift build -c release --scratch-path "$SCRATCH" --product packetflow >/dev/null
    PF=$SCRATCH/release/packetflow
fi
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
# best of R runs, in seconds
run() {
    best=
    i=0
    while [ $i -lt "$R" ]; do
        s=$(now); "$@" >/dev/null 2>&1; e=$(now)
        t=$(echo "$e - $s" | bc)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
        i=$((i + 1))
    done
    echo "$best"
}

echo "packetflow: $PF   N=$N (sockets: $N TCP exchanges; files: $((N * 10)) write+read)   best of $R"
for w in sockets files; do
    base=$(run python3 "$T/$w.py")
    pf=$(run "$PF" trace --no-capture --format jsonl -- python3 "$T/$w.py")
    pfc=$(run "$PF" trace --format jsonl -f "tcp port 1" -- python3 "$T/$w.py")
    st=$(run strace -f --seccomp-bpf -e trace=network -o /dev/null python3 "$T/$w.py")
    printf '%-8s untraced %6.2fs  packetflow %6.2fs (x%.2f)  packetflow+capture %6.2fs (x%.2f)  strace %6.2fs (x%.2f)\n' \
        "$w" "$base" "$pf" "$(echo "$pf / $base" | bc -l)" "$pfc" "$(echo "$pfc / $base" | bc -l)" \
        "$st" "$(echo "$st / $base" | bc -l)"
done
