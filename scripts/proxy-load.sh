#!/usr/bin/env bash
# Bounded load measurement of one proxy on loopback: a main process replays a 1,000-robot site
# recording in real time (`trace gen --preset site`), one `rmf-dash proxy` follows it, and node
# socket.io clients (tests/node/clients.mjs, websocket transport) connect to the proxy, each
# subscribed to ROOMS rooms (door and fleet states: about one change a second each; every node
# process gets its own slice of rooms). Prints deliveries/s, proxy CPU per delivery, proxy memory
# per connected client and the clients' latency from the main process's output. Everything stops
# by itself after SECONDS.
#
# usage: scripts/proxy-load.sh [CLIENTS_PER_PROCESS=1000] [PROCESSES=2] [ROOMS=10] [SECONDS=40]
#   TARGET=main connects the clients to the main process instead (the baseline: what the main
#   process spends when it serves the clients itself).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
per=${1:-1000}
procs=${2:-2}
nrooms=${3:-10}
seconds=${4:-40}
bin="$repo/target/release/rmf-dash"
[[ -x "$bin" ]] || cargo build --release
[[ -d tests/node/node_modules/socket.io-client ]] || (cd tests/node && npm ci --no-audit --no-fund --silent)
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { curl -s "http://127.0.0.1:$pt/metrics" | awk -v m="$1" '$1==m {print $2}'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

echo "== generating a 1,000-robot site recording ($((seconds + 60)) s)"
"$bin" trace gen --preset site --duration "$((seconds + 60))s" --seed 1 --no-ws -o "$work/site.mcap" >/dev/null
pm=$(port); pp=$(port)
"$bin" serve --no-db --no-auth --listen "127.0.0.1:$pm" --replay "$work/site.mcap" --speed 1 2>"$work/main.log" &
main=$!
pids+=($main)
sleep 1
"$bin" proxy --no-auth --upstream "http://127.0.0.1:$pm" --listen "127.0.0.1:$pp" 2>"$work/proxy.log" &
proxy=$!
pids+=($proxy)
sleep 2
# Where the clients go (and whose delivery counters are read).
if [[ "${TARGET:-proxy}" == main ]]; then pt=$pm; server=$main; else pt=$pp; server=$proxy; fi
# Rooms that change about once a second: door states, then fleet states.
curl -s "http://127.0.0.1:$pm/doors" | python3 -c '
import json, sys
doors = [d["name"] for d in json.load(sys.stdin)]
print("\n".join([f"/doors/{d}/state" for d in doors]))' > "$work/all.rooms"
total_rooms=$(wc -l < "$work/all.rooms")
rss0=$(rss_kb "$server")
clients=$((per * procs))
echo "== $clients clients ($procs node processes) on the ${TARGET:-proxy} x $nrooms rooms each, $total_rooms door rooms in all"
for i in $(seq 0 $((procs - 1))); do
    python3 -c "
import sys
rooms = open('$work/all.rooms').read().split()
n, i = $nrooms, $i
print('\n'.join(rooms[(i * n + k) % len(rooms)] for k in range(n)))" > "$work/$i.rooms"
    node tests/node/clients.mjs "http://127.0.0.1:$pt" - "$per" "$work/$i.rooms" "$seconds" > "$work/$i.json" &
    pids+=($!)
done
# Wait for every client, then measure over the middle of the run.
for _ in $(seq 1 120); do
    [[ "$(metric rmf_dash_socketio_connections)" == "$clients" ]] && break
    sleep 0.5
done
sleep 3
d1=$(metric rmf_dash_deliveries_total); c1=$(cpu_ticks "$server"); m1=$(cpu_ticks "$main"); t1=$(date +%s.%N)
sleep $((seconds / 2))
d2=$(metric rmf_dash_deliveries_total); c2=$(cpu_ticks "$server"); m2=$(cpu_ticks "$main"); t2=$(date +%s.%N)
rss1=$(rss_kb "$server")
coalesced=$(metric rmf_dash_coalesced_total)
wait "${pids[@]:2}" 2>/dev/null || true
hz=$(getconf CLK_TCK)
python3 - "$work" "$procs" <<PY
import json, sys
work, procs = sys.argv[1], int(sys.argv[2])
d = $d2 - $d1
dt = $t2 - $t1
cpu = ($c2 - $c1) / $hz
who = "${TARGET:-proxy}"
print(f"{who} deliveries/s      {d / dt:,.0f}  ({d:,} in {dt:.1f} s)")
print(f"{who} CPU               {cpu / dt * 100:.0f}% of a core, {cpu / max(d, 1) * 1e6:.2f} us per delivery")
print(f"{who} memory            {$rss0 / 1024:.0f} MiB before, {$rss1 / 1024:.0f} MiB with $clients clients: {($rss1 - $rss0) / $clients:.1f} KiB per client")
print(f"main process CPU          {($m2 - $m1) / $hz / dt * 100:.0f}% of a core (engine, replay, hub)")
print(f"coalesced deliveries      $coalesced")
for i in range(procs):
    s = json.load(open(f"{work}/{i}.json"))
    print(f"node process {i}: connected {s['connected']}, events {s['events']:,}, gaps {s['gaps']}, "
          f"duplicates {s['duplicates']}, backwards {s['backwards']}, latency main->client {s['latency']}")
PY
