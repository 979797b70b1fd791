#!/bin/sh
# Live capture against tcpdump, in the same run: packets lost and what the capture costs the sender.
#
# Traffic: 64-byte UDP datagrams to 127.0.0.1 from Benchmarks/udp-flood.c (one send(2) per datagram, a count AND a
# time limit, so every run stops by itself), at three rates: paced at $PACED pkt/s, one sender as fast as it goes,
# two senders as fast as they go. For each rate, one run with nothing capturing (the sender's own rate), then each
# capture writing a file, all listening on lo with the filter `udp dst port P` (a port of this run only):
#   tcpdump -w F.pcap            packetflow capture -w F.pcapng
#   tcpdump -nn > F.txt          packetflow capture > F.txt          packetflow capture --format jsonl > F.jsonl
# and, as pair-w and pair-text, tcpdump and packetflow at once on the same traffic (each writing its own file): on
# a machine that other work keeps busy, that compares their losses under the very same conditions.
# Lost = datagrams sent - packets in the file (each tool then got SIGINT after the wire was quiet for 1.5 s, longer
# than tcpdump's 1 s buffering timeout). The tool's own count of kernel drops is shown as well (tcpdump's counts
# each packet lost on lo twice). Sender rate is the rate the sender achieved while that tool captured, and its
# ratio to the rate with nothing capturing; tool CPU is the capturing process's user + system time.
# The load average before and after is printed: other work on the machine changes every figure.
#
# Usage: Benchmarks/bench-capture.sh [packetflow binary]    (root: capture)
#   SECS=3 PACED=200000 BUFFER_KIB=2048 Benchmarks/bench-capture.sh .build/release/packetflow
#   Without an argument it builds the release binary (swift build -c release --scratch-path $SCRATCH).
#   ONLY="pf-w tcpdump-w" limits the tools; RATES="fast1" limits the rates (paced fast1 fast2); ROUNDS=3 repeats
#   everything (the summary then gives medians; sender rates on a shared machine vary by tens of percent).
set -eu
SECS=${SECS:-3}
PACED=${PACED:-200000}
BUFFER_KIB=${BUFFER_KIB:-2048}
ONLY=${ONLY:-"none tcpdump-w pf-w tcpdump-text pf-text pf-jsonl pair-w pair-text"}
RATES=${RATES:-"paced fast1 fast2"}
ROUNDS=${ROUNDS:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ $# -ge 1 ]; then
    PF=$1
else
    SCRATCH=${SCRATCH:-.build}
    swift build -c release --scratch-path "$SCRATCH" --product packetflow >/dev/null
    PF=$SCRATCH/release/packetflow
fi
command -v tcpdump >/dev/null || { echo "bench-capture: needs tcpdump (apt-get install tcpdump)" >&2; exit 1; }
command -v capinfos >/dev/null || { echo "bench-capture: needs capinfos (apt-get install tshark)" >&2; exit 1; }
T=$(mktemp -d)
CAPTURES=
cleanup() {
    for p in $CAPTURES; do kill "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
cc -O2 -o "$T/udp-flood" "$HERE/udp-flood.c"

PORT=$((40000 + $$ % 10000))

# The tools of run $1: one, or tcpdump and packetflow together.
members() {
    case $1 in
    pair-w) echo "tcpdump-w pf-w" ;;
    pair-text) echo "tcpdump-text pf-text" ;;
    *) echo "$1" ;;
    esac
}

# Starts tool $1 on port $2 in the background, writing $T/out.$1 and $T/err.$1; adds its pid to $CAPTURES.
start_capture() {
    f="udp dst port $2"
    o=$T/out.$1
    e=$T/err.$1
    case $1 in
    none) return ;;
    tcpdump-w) tcpdump -i lo -n -B "$BUFFER_KIB" -w "$o" $f 2>"$e" & ;;
    tcpdump-text) tcpdump -i lo -nn -B "$BUFFER_KIB" $f >"$o" 2>"$e" & ;;
    pf-w) "$PF" capture -i lo -B "$BUFFER_KIB" -w "$o" $f 2>"$e" & ;;
    pf-text) "$PF" capture -i lo -B "$BUFFER_KIB" $f >"$o" 2>"$e" & ;;
    pf-jsonl) "$PF" capture -i lo -B "$BUFFER_KIB" --format jsonl $f >"$o" 2>"$e" & ;;
    esac
    echo $! >"$T/pid.$1"
    CAPTURES="$CAPTURES $!"
}

# Packets in tool $1's file, and the tool's count of kernel drops.
count_capture() {
    case $1 in
    tcpdump-w | pf-w) got=$(capinfos -c -M "$T/out.$1" | awk '/Number of packets/ { print $NF }') ;;
    *) got=$(grep -c . "$T/out.$1" || true) ;;  # tcpdump ends its text with an empty line
    esac
    case $1 in
    tcpdump-*) dropped=$(awk '/dropped by kernel/ { print $1 }' "$T/err.$1") ;;
    pf-*) dropped=$(sed -n 's/.*captured, \([0-9]*\) dropped by kernel.*/\1/p' "$T/err.$1") ;;
    esac
}

# Runs traffic $1 (paced, fast1, fast2) against port $2; sets sent and rate (summed over senders).
traffic() {
    case $1 in
    paced) "$T/udp-flood" -p "$2" -n $((PACED * SECS)) -t $((SECS * 2)) -r "$PACED" >"$T/s1" ;;
    fast1) "$T/udp-flood" -p "$2" -n 100000000 -t "$SECS" >"$T/s1" ;;
    fast2)
        "$T/udp-flood" -p "$2" -n 100000000 -t "$SECS" >"$T/s1" &
        a=$!
        "$T/udp-flood" -p "$2" -n 100000000 -t "$SECS" >"$T/s2"
        wait "$a"
        ;;
    esac
    [ "$1" = fast2 ] || : >"$T/s2"
    sent=$(cat "$T/s1" "$T/s2" | awk '{ n += $2 } END { print n }')
    rate=$(cat "$T/s1" "$T/s2" | awk '{ r += $6 } END { printf "%.0f", r }')
}

echo "packetflow: $PF   tcpdump: $(tcpdump --version 2>&1 | head -1)   $(tcpdump --version 2>&1 | sed -n 2p)"
echo "64-byte UDP datagrams on lo, ${SECS}s per run, paced rate $PACED pkt/s, -B $BUFFER_KIB KiB for both tools,"
echo "$ROUNDS round(s), the tools taking turns within each rate (both:X = tcpdump and packetflow at once)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)   cores: $(nproc)"
HZ=$(getconf CLK_TCK)
: >"$T/rows"
printf '%-5s %-7s %-17s %10s %10s %8s %8s %10s %9s\n' round rate tool sent captured lost kdrop "sender/s" "tool CPU"
round=1
while [ $round -le "$ROUNDS" ]; do
    for r in $RATES; do
        for run in $ONLY; do
            PORT=$((PORT + 1))
            rm -f "$T"/out.* "$T"/err.* "$T"/pid.*
            for tool in $(members "$run"); do start_capture "$tool" "$PORT"; done
            # Until the tools have their sockets open and filtered: a second covers it on an idle machine (a
            # packet sent before would be counted as lost).
            [ "$run" = none ] || sleep 1
            traffic "$r" "$PORT"
            if [ "$run" = none ]; then
                printf '%-5s %-7s %-17s %10s %10s %8s %8s %10s %9s\n' "$round" "$r" none "$sent" - - - "$rate" - |
                    tee -a "$T/rows"
                continue
            fi
            sleep 1.5
            for tool in $(members "$run"); do
                # The tool's CPU time so far (user + system), before Ctrl-C: every packet has been handed over.
                awk -v hz="$HZ" '{ printf "%.2fs", ($14 + $15) / hz }' "/proc/$(cat "$T/pid.$tool")/stat" >"$T/cpu.$tool"
                kill -INT "$(cat "$T/pid.$tool")"
            done
            for tool in $(members "$run"); do wait "$(cat "$T/pid.$tool")" || true; done
            CAPTURES=
            for tool in $(members "$run"); do
                count_capture "$tool"
                label=$tool
                [ "$run" = "$tool" ] || label="both:$tool"
                printf '%-5s %-7s %-17s %10s %10s %8s %8s %10s %9s\n' "$round" "$r" "$label" "$sent" "$got" \
                    $((sent - got)) "${dropped:-?}" "$rate" "$(cat "$T/cpu.$tool")" | tee -a "$T/rows"
            done
        done
    done
    round=$((round + 1))
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Summary: packets lost over all rounds (lost/sent), the sender's median rate and its ratio to the median with"
echo "nothing capturing, the tool's median CPU time."
printf '%-7s %-17s %20s %12s %8s %9s\n' rate tool "lost/sent" "sender/s" "x alone" "tool CPU"
for r in $RATES; do
    alone=$(awk -v r="$r" '$2 == r && $3 == "none" { print $8 }' "$T/rows" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    for tool in $(awk -v r="$r" '$2 == r && !seen[$3]++ { print $3 }' "$T/rows"); do
        awk -v r="$r" -v t="$tool" '$2 == r && $3 == t' "$T/rows" >"$T/sel"
        lostsent=$(awk '{ l += ($6 == "-" ? 0 : $6); s += $4 } END { printf "%d/%d", l, s }' "$T/sel")
        med=$(awk '{ print $8 }' "$T/sel" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        cpu=$(awk '{ print $9 }' "$T/sel" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        ratio=-
        [ -n "$alone" ] && ratio=$(echo "$med / $alone" | bc -l | xargs printf '%.2f')
        [ "$tool" = none ] && lostsent=-
        printf '%-7s %-17s %20s %12s %8s %9s\n' "$r" "$tool" "$lostsent" "$med" "$ratio" "$cpu"
    done
done
