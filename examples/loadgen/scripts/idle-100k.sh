#!/usr/bin/env bash
# 100,000 idle WebSocket connections on one machine whose processes are each capped at
# 20,000 file descriptors: S server processes share one port with SO_REUSEPORT (the kernel
# spreads connections over them) and G generator processes open PER connections each,
# skipping negotiation (a negotiate and its WebSocket could land on different processes).
# Prints the established server-side connections and the servers' summed RSS every 2 s,
# then the peak and the RSS growth per connection. Loopback only; every process started
# here is stopped by its pid.
#
#   cargo build --release -p loadgen
#   examples/loadgen/scripts/idle-100k.sh                      # 7 servers, 6 x 17,000
#   S=2 G=2 PER=3000 HOLD=10 examples/loadgen/scripts/idle-100k.sh   # a small try
set -euo pipefail
cd "$(dirname "$0")/../../.."
S=${S:-7}; G=${G:-6}; PER=${PER:-17000}; PORT=${PORT:-47123}; KIND=${KIND:-signalr}
HOLD=${HOLD:-60}; CONC=${CONC:-24}; WAIT=${WAIT:-300}
B=target/release/loadgen
# Runs in the background subshell it is started in and replaces it, so that $! is the program.
pin() { if command -v taskset >/dev/null; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }
servers=(); gens=()
stop() { kill "${gens[@]}" "${servers[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 1 "$S"); do
  pin 0 "$B" serve --kind "$KIND" --addr "127.0.0.1:$PORT" --reuse-port >/dev/null 2>&1 &
  servers+=($!)
done
sleep 1
rss() { local t=0 r; for p in "${servers[@]}"; do r=$(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0); t=$((t + ${r:-0})); done; echo "$t"; }
established() { ss -Htn state established "( sport = :$PORT )" | wc -l; }
rss0=$(rss)
echo "servers ${servers[*]}: ${rss0} KiB before"
for g in $(seq 1 "$G"); do
  pin 1 "$B" idle --url "ws://127.0.0.1:$PORT/bench" --negotiate false --connections "$PER" \
    --steps 1 --hold "$HOLD" --sources 8 --concurrency "$CONC" --json "/tmp/idle-100k-gen-$g.json" >/dev/null 2>&1 &
  gens+=($!)
done
peak=0; peak_rss=0
for t in $(seq 1 $((WAIT / 2))); do
  sleep 2
  n=$(established); r=$(rss)
  echo "t=$((t * 2))s established=$n servers_rss_kib=$r"
  if [ "$n" -gt "$peak" ]; then peak=$n; peak_rss=$r; fi
  alive=0; for p in "${gens[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
done
echo "peak: $peak established, servers' RSS ${peak_rss} KiB, $(( (peak_rss - rss0) * 1024 / (peak > 0 ? peak : 1) )) bytes per connection"
for g in $(seq 1 "$G"); do
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('generator', sys.argv[2], d['ramp'], 'closed during hold:', d.get('closed_during_hold'))" "/tmp/idle-100k-gen-$g.json" "$g" 2>/dev/null || true
done
