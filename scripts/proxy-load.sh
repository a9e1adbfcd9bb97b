#!/usr/bin/env bash
# Bounded load test of one proxy on loopback (issue 6): a main process replays a 1,000-robot site
# recording in real time (`trace gen --preset site`), one `rmf-dash proxy` follows it, and one
# `rmf-dash bench-load` process holds CLIENTS socket.io clients (Engine.IO 4 websocket transport)
# on the proxy, each subscribed to ROOMS of the site's 1,000 busiest rooms (200 door, 50 fleet and
# 10 lift states, about one change a second each, and 740 robot task rooms, shuffled with a fixed
# seed: every room gets CLIENTS x ROOMS / 1,000 subscribers). Prints deliveries/s, latency from
# the main process's output to the client (the envelope's `sent_ms`), server CPU per delivery,
# server memory per connected client, the zero-loss check (every client checks every room's
# sequence numbers) and the load average. Everything stops by itself.
#
# usage: scripts/proxy-load.sh [CLIENTS=10000] [ROOMS=10] [SECONDS=30]
#   TARGET=proxy (default) measures the proxy; TARGET=main connects the same clients to the main
#   process instead; TARGET=both runs the two one after the other and prints their ratios (the
#   same-run baseline). OUT=file.json keeps the figures.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
clients=${1:-10000}
per=${2:-10}
seconds=${3:-30}
target=${TARGET:-proxy}
bin="$repo/target/release/rmf-dash"
[[ -x "$bin" ]] || cargo build --release
if (($(ulimit -n) < clients + 1000)); then ulimit -n $((clients + 1000)) 2>/dev/null || {
    echo "need $((clients + 1000)) open files (ulimit -n is $(ulimit -n))" >&2
    exit 1
}; fi
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1==m {print $2}'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Long enough for both runs: connecting 10,000 clients takes 10-30 s.
duration=$((2 * (seconds + 90)))
echo "== generating a 1,000-robot site recording (${duration} s)"
"$bin" trace gen --preset site --duration "${duration}s" --seed 1 --no-ws -o "$work/site.mcap" >/dev/null

# One measurement: clients on $1 (proxy or main); figures to $work/$1.json.
run() {
    local who=$1 pm pp pt main proxy server load
    pm=$(port)
    "$bin" serve --no-db --no-auth --listen "127.0.0.1:$pm" --replay "$work/site.mcap" --speed 1 \
        2>"$work/main-$who.log" &
    main=$!
    pids+=("$main")
    for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$pm/health" >/dev/null && break; sleep 0.2; done
    if [[ $who == proxy ]]; then
        pp=$(port)
        "$bin" proxy --no-auth --upstream "http://127.0.0.1:$pm" --listen "127.0.0.1:$pp" \
            2>"$work/proxy.log" &
        proxy=$!
        pids+=("$proxy")
        for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$pp/health" >/dev/null && break; sleep 0.2; done
        pt=$pp
        server=$proxy
    else
        pt=$pm
        server=$main
    fi
    sleep 2
    # The site's 1,000 busiest rooms, shuffled so that every client gets a mix.
    curl -s "http://127.0.0.1:$pm/doors" >"$work/doors.json"
    curl -s "http://127.0.0.1:$pm/fleets" >"$work/fleets.json"
    curl -s "http://127.0.0.1:$pm/lifts" >"$work/lifts.json"
    python3 - "$work" >"$work/rooms" <<'PY'
import json, random, sys
w = sys.argv[1]
doors = [d["name"] for d in json.load(open(f"{w}/doors.json"))]
fleets = json.load(open(f"{w}/fleets.json"))
lifts = [l["name"] for l in json.load(open(f"{w}/lifts.json"))]
rooms = [f"/doors/{d}/state" for d in doors] + [f"/fleets/{f['name']}/state" for f in fleets]
rooms += [f"/lifts/{l}/state" for l in lifts]
robots = [f"/robots/{f['name']}/{r}/task" for f in fleets for r in f["robots"]]
rooms += robots[: 1000 - len(rooms)]
random.Random(1).shuffle(rooms)
print(",".join(rooms))
PY
    local nrooms rss0 rss1 d1 d2 c1 c2 m1 m2 l1 l2 k1 k2 t1 t2 line report
    nrooms=$(tr ',' '\n' <"$work/rooms" | wc -l)
    rss0=$(rss_kb "$server")
    echo "== $who: $clients clients x $per of $nrooms rooms; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    coproc LOAD { exec "$bin" bench-load --addr "127.0.0.1:$pt" --mode socketio --clients "$clients" \
        --per-client "$per" --rooms "$(cat "$work/rooms")" 2>"$work/load-$who.log"; }
    load=$LOAD_PID
    pids+=("$load")
    local t0=$SECONDS
    if ! read -r -t 180 -u "${LOAD[0]}" line || [[ $line != ready ]]; then
        echo "clients did not all subscribe within 180 s: $(tail -3 "$work/load-$who.log")" >&2
        exit 1
    fi
    echo "   connected and subscribed in $((SECONDS - t0)) s; measuring ${seconds} s"
    sleep 3
    rss1=$(rss_kb "$server")
    d1=$(metric "$pt" rmf_dash_deliveries_total); k1=$(metric "$pt" rmf_dash_coalesced_total)
    c1=$(cpu_ticks "$server"); m1=$(cpu_ticks "$main"); l1=$(cpu_ticks "$load"); t1=$(date +%s.%N)
    echo go >&"${LOAD[1]}"
    sleep "$seconds"
    # Read before `stop`: the load process reports and exits at once.
    d2=$(metric "$pt" rmf_dash_deliveries_total); k2=$(metric "$pt" rmf_dash_coalesced_total)
    c2=$(cpu_ticks "$server"); m2=$(cpu_ticks "$main"); l2=$(cpu_ticks "$load"); t2=$(date +%s.%N)
    echo stop >&"${LOAD[1]}"
    read -r -t 30 -u "${LOAD[0]}" report
    local load_avg
    load_avg=$(cut -d' ' -f1-3 /proc/loadavg)
    stop_pid "$load"
    [[ $who == proxy ]] && stop_pid "$proxy"
    stop_pid "$main"
    python3 - "$work/$who.json" <<PY
import json, sys
r = json.loads('''$report''')
hist = sorted(r["histogram"])
samples = sum(n for _, n in hist)
def q(p):
    want, seen = max(1, round(samples * p + 0.4999)), 0
    for ms, n in hist:
        seen += n
        if seen >= want:
            return ms + 1
    return None
hz, dt = $(getconf CLK_TCK), $t2 - $t1
d = $d2 - $d1
cpu = ($c2 - $c1) / hz
fig = {
    "target": "$who", "clients": $clients, "rooms_per_client": $per, "rooms": $nrooms,
    "seconds": round(dt, 1), "load_average": "$load_avg",
    "server_deliveries_per_s": round(d / dt), "client_deliveries_per_s": round(r["deliveries"] / dt),
    "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999),
    "server_cpu_core": round(cpu / dt, 3), "server_us_per_delivery": round(cpu / max(d, 1) * 1e6, 2),
    "main_cpu_core": round(($m2 - $m1) / hz / dt, 3),
    "load_process_cpu_core": round(($l2 - $l1) / hz / dt, 3),
    "server_rss_mib_before": round($rss0 / 1024), "server_rss_mib_with_clients": round($rss1 / 1024),
    "kib_per_client": round(($rss1 - $rss0) / $clients, 1),
    "gaps": r["gaps"], "duplicates": r["duplicates"], "backwards": r["backwards"],
    "clients_closed": r["closed"], "coalesced": $k2 - $k1,
}
fig["zero_loss"] = fig["gaps"] == fig["duplicates"] == fig["backwards"] == fig["clients_closed"] == fig["coalesced"] == 0
json.dump(fig, open(sys.argv[1], "w"))
print(f"   deliveries/s       {fig['server_deliveries_per_s']:,} by the server, {fig['client_deliveries_per_s']:,} received")
print(f"   latency main->client p50 {fig['p50_ms']} ms, p99 {fig['p99_ms']} ms, p999 {fig['p999_ms']} ms")
print(f"   $who CPU           {fig['server_cpu_core'] * 100:.0f}% of a core, {fig['server_us_per_delivery']} us per delivery")
print(f"   main process CPU   {fig['main_cpu_core'] * 100:.0f}% of a core (engine, replay, hub{', clients' if '$who' == 'main' else ', the proxy link'})")
print(f"   load process CPU   {fig['load_process_cpu_core'] * 100:.0f}% of a core (the clients, one thread)")
print(f"   $who memory        {fig['server_rss_mib_before']} MiB before, {fig['server_rss_mib_with_clients']} MiB with the clients: {fig['kib_per_client']} KiB per client")
print(f"   zero loss          {fig['zero_loss']} (gaps {fig['gaps']}, duplicates {fig['duplicates']}, backwards {fig['backwards']}, clients closed {fig['clients_closed']}, coalesced {fig['coalesced']})")
print(f"   load average       {fig['load_average']} (after)")
PY
}

case $target in
proxy | main) run "$target" ;;
both) run proxy && run main ;;
*) echo "TARGET is proxy, main or both" >&2; exit 2 ;;
esac
if [[ $target == both ]]; then
    python3 - "$work" <<'PY'
import json, sys
p, m = (json.load(open(f"{sys.argv[1]}/{w}.json")) for w in ("proxy", "main"))
print("== proxy / main (same clients, same site)")
for k in ("server_deliveries_per_s", "p50_ms", "p99_ms", "server_us_per_delivery", "kib_per_client"):
    if p[k] and m[k]:
        print(f"   {k:24} {p[k]} / {m[k]} = {p[k] / m[k]:.2f}")
# The main process's CPU for the clients alone: its CPU serving them minus its CPU feeding a proxy.
extra = (m["main_cpu_core"] - p["main_cpu_core"]) / max(m["server_deliveries_per_s"], 1) * 1e6
print(f"   main's CPU for the clients alone (its CPU minus its CPU in the proxy run): {extra:.2f} us per delivery;"
      f" proxy: {p['server_us_per_delivery']} us per delivery ({p['server_us_per_delivery'] / max(extra, 1e-9):.2f}x)")
PY
fi
if [[ -n ${OUT:-} ]]; then
    python3 -c 'import json,sys,os; w=sys.argv[1]; print(json.dumps([json.load(open(f"{w}/{t}.json")) for t in ("proxy","main") if os.path.exists(f"{w}/{t}.json")], indent=1))' "$work" >"$OUT"
fi
