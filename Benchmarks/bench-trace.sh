#!/bin/sh
# Overhead of `packetflow trace` against the untraced program and against strace, all in the same run.
# A socket-heavy workload (many small TCP exchanges on loopback) and a file-heavy one (open/write/read/close).
# Configurations: untraced; `packetflow trace` as users run it (capture on lo, no filter, text output);
# `packetflow trace --no-capture`; `strace -f --seccomp-bpf -e trace=network -o /dev/null`; and, when the binary
# has the eBPF engine (`trace --engine`), `trace --engine ebpf` with and without capture.
# Runs are interleaved (one of each configuration per round, R rounds) so a change in machine load hits all of them
# alike; the median counts, and ratios are over the untraced median (the fastest runs, least disturbed, are
# printed too). The load average is printed before and after.
# Usage: Benchmarks/bench-trace.sh [packetflow binary]   (root: ptrace and capture)
#   Without an argument it builds the release binary (swift build -c release --scratch-path $SCRATCH).
#   N=1000 R=5 SCRATCH=.build Benchmarks/bench-trace.sh
set -eu
N=${N:-1000}
R=${R:-5}
if [ $# -ge 1 ]; then
    PF=$1
else
    SCRATCH=${SCRATCH:-.build}
    swift build -c release --scratch-path "$SCRATCH" --product packetflow >/dev/null
    PF=$SCRATCH/release/packetflow
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# The interpreter itself, not a version manager's shim (pyenv's is a bash script that forks several processes,
# which every configuration would pay and both tracers would follow).
PY=$(python3 -c 'import sys; print(sys.executable)')

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
# Appends one run's seconds to $T/<workload>.<config>.
once() {
    out=$1
    shift
    s=$(now)
    "$@" >/dev/null 2>&1 || true
    e=$(now)
    echo "$e - $s" | bc >>"$out"
}
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
least() { sort -n "$1" | head -1; }

# The eBPF columns need a packetflow whose trace has --engine, and a kernel where the engine loads.
EBPF=0
if "$PF" trace --help 2>/dev/null | grep -q -- '--engine' && "$PF" trace --engine ebpf --no-capture -- true >/dev/null 2>&1
then
    EBPF=1
fi

echo "packetflow: $PF   python: $PY   N=$N (sockets: $N TCP exchanges; files: $((N * 10)) write+read)   median of $R, interleaved"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)   cores: $(nproc)"
for w in sockets files; do
    i=0
    while [ $i -lt "$R" ]; do
        once "$T/$w.base" "$PY" "$T/$w.py"
        once "$T/$w.pf" "$PF" trace -- "$PY" "$T/$w.py"
        once "$T/$w.pfn" "$PF" trace --no-capture -- "$PY" "$T/$w.py"
        once "$T/$w.st" strace -f --seccomp-bpf -e trace=network -o /dev/null "$PY" "$T/$w.py"
        if [ "$EBPF" = 1 ]; then
            once "$T/$w.eb" "$PF" trace --engine ebpf -- "$PY" "$T/$w.py"
            once "$T/$w.ebn" "$PF" trace --engine ebpf --no-capture -- "$PY" "$T/$w.py"
        fi
        i=$((i + 1))
    done
    base=$(median "$T/$w.base")
    pf=$(median "$T/$w.pf")
    pfn=$(median "$T/$w.pfn")
    st=$(median "$T/$w.st")
    printf '%-8s untraced %6.3fs  packetflow %6.3fs (x%.2f)  --no-capture %6.3fs (x%.2f)  strace %6.3fs (x%.2f)\n' \
        "$w" "$base" "$pf" "$(echo "$pf / $base" | bc -l)" "$pfn" "$(echo "$pfn / $base" | bc -l)" \
        "$st" "$(echo "$st / $base" | bc -l)"
    printf '%-8s fastest: untraced %6.3fs  packetflow %6.3fs (x%.2f)  --no-capture %6.3fs (x%.2f)  strace %6.3fs (x%.2f)\n' \
        "" "$(least "$T/$w.base")" "$(least "$T/$w.pf")" "$(echo "$(least "$T/$w.pf") / $(least "$T/$w.base")" | bc -l)" \
        "$(least "$T/$w.pfn")" "$(echo "$(least "$T/$w.pfn") / $(least "$T/$w.base")" | bc -l)" \
        "$(least "$T/$w.st")" "$(echo "$(least "$T/$w.st") / $(least "$T/$w.base")" | bc -l)"
    printf '%-8s runs: untraced %s | packetflow %s | --no-capture %s | strace %s\n' "" \
        "$(sort -n "$T/$w.base" | tr '\n' ' ')" "$(sort -n "$T/$w.pf" | tr '\n' ' ')" \
        "$(sort -n "$T/$w.pfn" | tr '\n' ' ')" "$(sort -n "$T/$w.st" | tr '\n' ' ')"
    if [ "$EBPF" = 1 ]; then
        eb=$(median "$T/$w.eb")
        ebn=$(median "$T/$w.ebn")
        # The issue's measure: the engine's slowdown as a fraction of strace's (ebpf / strace, both over untraced).
        printf '%-8s ebpf %6.3fs (x%.2f = %.2fx strace'"'"'s)  ebpf --no-capture %6.3fs (x%.2f = %.2fx strace'"'"'s)\n' \
            "" "$eb" "$(echo "$eb / $base" | bc -l)" "$(echo "$eb / $st" | bc -l)" \
            "$ebn" "$(echo "$ebn / $base" | bc -l)" "$(echo "$ebn / $st" | bc -l)"
        printf '%-8s runs: ebpf %s | ebpf --no-capture %s\n' "" \
            "$(sort -n "$T/$w.eb" | tr '\n' ' ')" "$(sort -n "$T/$w.ebn" | tr '\n' ' ')"
    fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
