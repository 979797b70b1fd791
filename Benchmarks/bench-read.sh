#!/bin/bash
# Times `packetflow read` against tcpdump and tshark on the same ~2 million packet pcap, in one run.
#   Benchmarks/bench-read.sh [packets]        (default 2000000; data goes to Benchmarks/data/, gitignored)
#   SCRATCH=.build-readperf Benchmarks/bench-read.sh   (build directory, default .build-read)
#   FLAGS="-v -e" Benchmarks/bench-read.sh    (tcpdump's display flags to time against tcpdump with the same flag;
#                                             default: -v -vv -e -q -ttt -tttt -# -x -X -A; FLAGS= for none)
# Uses hyperfine when installed, else bash's `time` (best of 3). Peak memory from /usr/bin/time -v.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-2000000}
data=Benchmarks/data
pcap=$data/bench-$packets.pcap
mkdir -p "$data"
[ -f "$pcap" ] || { echo "generating $pcap ..." >&2; python3 Benchmarks/gen-pcap.py "$pcap" --packets "$packets" --anomalies; }
# SCRATCH: the build directory (each worktree keeps its own; default .build-read).
scratch=${SCRATCH:-.build-read}
swift build -c release --scratch-path "$scratch" --product packetflow >&2
pf=$(swift build -c release --scratch-path "$scratch" --show-bin-path)/packetflow
fields="-e frame.number -e frame.time_epoch -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst -e tcp.srcport -e tcp.dstport \
-e udp.srcport -e udp.dstport -e tcp.flags -e tcp.seq -e tcp.ack -e tcp.len -e tcp.stream -e udp.length -e tcp.window_size_value"

names=(cat pf-text tcpdump pf-jsonl tshark-fields pf-conv tshark-conv)
declare -A cmd=(
  [cat]="cat $pcap"
  [pf-text]="$pf read $pcap"
  [tcpdump]="TZ=UTC tcpdump -nn -r $pcap"
  [pf-jsonl]="$pf read --format jsonl $pcap"
  [tshark-fields]="tshark -r $pcap -T fields $fields"
  [pf-conv]="$pf read --conversations $pcap"
  [tshark-conv]="tshark -r $pcap -q -z conv,tcp -z conv,udp"
)
declare -A secs rss
for n in "${names[@]}"; do
  if command -v hyperfine >/dev/null; then
    runs=3; case $n in tshark*) runs=1;; esac
    hyperfine -N --style none --runs $runs --export-json "$data/$n.json" "bash -c '${cmd[$n]} >/dev/null 2>&1'" >/dev/null 2>&1 \
      || hyperfine --style none --runs $runs --export-json "$data/$n.json" "${cmd[$n]} >/dev/null 2>&1" >/dev/null
    secs[$n]=$(python3 -c "import json;print('%.3f'%json.load(open('$data/$n.json'))['results'][0]['median'])")
  else
    best=
    for _ in 1 2 3; do
      s=$( { /usr/bin/env TIMEFORMAT=%R bash -c "time (${cmd[$n]} >/dev/null 2>&1)"; } 2>&1 | tail -1)
      best=$(python3 -c "print(min(float('$s'), float('${best:-$s}')))")
      case $n in tshark*) break;; esac
    done
    secs[$n]=$best
  fi
  rss[$n]=$( { /usr/bin/time -v bash -c "${cmd[$n]} >/dev/null 2>&1"; } 2>&1 | awk '/Maximum resident/ {print int($6/1024)}')
  printf '%-14s %8.3f s  %6s MB peak RSS   %s\n' "$n" "${secs[$n]}" "${rss[$n]}" "${cmd[$n]}" >&2
done
ratio() { python3 -c "print('%.1fx' % (float('${secs[$2]}') / float('${secs[$1]}')))"; }
echo
echo "packets: $packets   file: $(du -h "$pcap" | cut -f1)"
echo "| task | packetflow | peer | peer time | speed-up | packetflow peak RSS | peer peak RSS |"
echo "|---|---|---|---|---|---|---|"
echo "| text lines | ${secs[pf-text]} s | tcpdump -nn | ${secs[tcpdump]} s | $(ratio pf-text tcpdump) | ${rss[pf-text]} MB | ${rss[tcpdump]} MB |"
echo "| JSON Lines / fields | ${secs[pf-jsonl]} s | tshark -T fields | ${secs[tshark-fields]} s | $(ratio pf-jsonl tshark-fields) | ${rss[pf-jsonl]} MB | ${rss[tshark-fields]} MB |"
echo "| conversations | ${secs[pf-conv]} s | tshark -z conv | ${secs[tshark-conv]} s | $(ratio pf-conv tshark-conv) | ${rss[pf-conv]} MB | ${rss[tshark-conv]} MB |"
echo "| (cat, the floor) | ${secs[cat]} s | | | | | |"

# tcpdump's display flags: the same flag to both, in the same run (-S: tcpdump's relative numbers cost it a table).
flags=${FLAGS--v -vv -e -q -ttt -tttt -# -x -X -A}
if [ -n "$flags" ]; then
  echo
  echo "| flag | packetflow read -S | TZ=UTC tcpdump -nn -S -r | speed-up |"
  echo "|---|---|---|---|"
  for f in $flags; do
    declare -A pair=([pf]="$pf read -S $f $pcap" [td]="TZ=UTC tcpdump -nn -S $f -r $pcap")
    for side in pf td; do
      if command -v hyperfine >/dev/null; then
        hyperfine -N --style none --runs 3 --export-json "$data/flag.json" "bash -c '${pair[$side]} >/dev/null 2>&1'" \
          >/dev/null 2>&1
        secs[$side]=$(python3 -c "import json;print('%.3f'%json.load(open('$data/flag.json'))['results'][0]['median'])")
      else
        best=
        for _ in 1 2 3; do
          s=$( { /usr/bin/env TIMEFORMAT=%R bash -c "time (${pair[$side]} >/dev/null 2>&1)"; } 2>&1 | tail -1)
          best=$(python3 -c "print(min(float('$s'), float('${best:-$s}')))")
        done
        secs[$side]=$best
      fi
    done
    echo "| \`$f\` | ${secs[pf]} s | ${secs[td]} s | $(ratio pf td) |"
  done
fi
