#!/bin/sh
# Overhead of `packetflow trace` against the untraced program and against strace, all in the same run.
# A socket-heavy workload (many small TCP exchanges on loopback) and a file-heavy one (open/write/read/close).
# Configurations: untraced; `strace -f --seccomp-bpf -e trace=network -o /dev/null`; each engine as users run it
# (`trace --engine ebpf|ptrace`: capture on lo, no filter, attribution, Python lines, text output) and with
# `--no-capture`. The eBPF columns need a kernel where the engine loads (root, BTF); without it they are left out.
# Runs are interleaved (one of each configuration per round, R rounds) so a change in machine load hits all of them
# alike; the median counts, and ratios are over the untraced median (the fastest runs, least disturbed, are
# printed too). The issue's measure for an engine is its time over strace's in the same run ("x strace"): its
# slowdown as a fraction of strace's. The load average is printed before and after.
# Usage: Benchmarks/bench-trace.sh [packetflow binary]   (root: ptrace, BPF and capture)
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
ratio() { echo "$1 / $2" | bc -l; }

CONFIGS="base st pt ptn"
if "$PF" trace --engine ebpf --no-capture -- true >/dev/null 2>&1; then
    CONFIGS="$CONFIGS eb ebn"
else
    why=$("$PF" trace --engine ebpf --no-capture -- true 2>&1 | head -1)
    echo "the eBPF engine does not load here, its columns are left out: $why"
fi
name() {
    case $1 in
    base) echo "untraced" ;;
    st) echo "strace" ;;
    pt) echo "ptrace engine" ;;
    ptn) echo "ptrace --no-capture" ;;
    eb) echo "eBPF engine" ;;
    ebn) echo "eBPF --no-capture" ;;
    esac
}
run() {
    case $1 in
    base) once "$T/$2.base" "$PY" "$T/$2.py" ;;
    st) once "$T/$2.st" strace -f --seccomp-bpf -e trace=network -o /dev/null "$PY" "$T/$2.py" ;;
    pt) once "$T/$2.pt" "$PF" trace --engine ptrace -- "$PY" "$T/$2.py" ;;
    ptn) once "$T/$2.ptn" "$PF" trace --engine ptrace --no-capture -- "$PY" "$T/$2.py" ;;
    eb) once "$T/$2.eb" "$PF" trace --engine ebpf -- "$PY" "$T/$2.py" ;;
    ebn) once "$T/$2.ebn" "$PF" trace --engine ebpf --no-capture -- "$PY" "$T/$2.py" ;;
    esac
}

echo "packetflow: $PF   python: $PY   N=$N (sockets: $N TCP exchanges; files: $((N * 10)) write+read)   median of $R, interleaved"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)   cores: $(nproc)"
for w in sockets files; do
    i=0
    while [ $i -lt "$R" ]; do
        for c in $CONFIGS; do run "$c" "$w"; done
        i=$((i + 1))
    done
    base=$(median "$T/$w.base")
    st=$(median "$T/$w.st")
    fbase=$(least "$T/$w.base")
    fst=$(least "$T/$w.st")
    echo "$w:"
    for c in $CONFIGS; do
        m=$(median "$T/$w.$c")
        f=$(least "$T/$w.$c")
        printf '  %-20s median %6.3fs (x%.2f untraced, %.2fx strace)   fastest %6.3fs (x%.2f, %.2fx strace)\n' \
            "$(name "$c")" "$m" "$(ratio "$m" "$base")" "$(ratio "$m" "$st")" \
            "$f" "$(ratio "$f" "$fbase")" "$(ratio "$f" "$fst")"
    done
    for c in $CONFIGS; do
        printf '  runs %-20s %s\n' "$(name "$c")" "$(sort -n "$T/$w.$c" | tr '\n' ' ')"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
