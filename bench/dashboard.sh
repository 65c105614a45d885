#!/usr/bin/env bash
# bench/dashboard.sh: requests/s through sluice with the dashboard open vs closed, side by side
# (docs/dashboard.md, docs/benchmarks.md).
#
#   bash bench/dashboard.sh [-rounds 8] [-duration 5] [-connections 32] [-pairs 3] [-idle 20]
#
# One sluice (client and admin listeners) in front of bench/backend, on loopback ports from
# PORT_LO..PORT_LO+PORT_SPAN-1 (default 23000-23999, below the ephemeral range). Each round runs bench/loadgen for -duration; in every other round
# bench/dashpoll polls what an open dashboard polls, once a second (overview and pool
# endpoints together: more than any one page asks). The order alternates (closed, open,
# open, closed, ...) so drift on a shared machine falls on both sides. Reported: each round's
# req/s, the medians of each side and open/closed.
#
# On a shared machine req/s moves by more than the effect, so the script also measures the
# cost directly as CPU time of the sluice process (utime+stime): -pairs pairs of -idle s without
# load, dashboard closed and open, give the CPU the open dashboard costs per second; the load
# rounds give the CPU per request. Their ratio is the share of the gateway's CPU at the
# measured rate that an open dashboard takes.
set -euo pipefail

ROUNDS=8 DURATION=5 CONNS=32 PAIRS=3 IDLE=20
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-pairs) PAIRS=$2; shift ;;
	-idle) IDLE=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "dashboard.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init dash

# free_port (bench/lib.sh) hands out ports from PORT_LO..PORT_LO+PORT_SPAN-1 only.
PORT_LO=${PORT_LO:-23000} PORT_SPAN=${PORT_SPAN:-1000}
BE=$(free_port); PORT[backend]=$BE
GW=$(free_port); PORT[sluice]=$GW
ADMIN=$(free_port); PORT[admin]=$ADMIN
log "building sluice, backend, loadgen and dashpoll into $TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice ./bench/backend ./bench/loadgen ./bench/dashpoll)

"$TMP/bin/backend" -addr "127.0.0.1:$BE" -size 300 >"$TMP/backend.log" 2>&1 &
PID[backend]=$!; STARTED+=("$!")
cat >"$TMP/sluice.yaml" <<YAML
listeners: [{address: "127.0.0.1:$GW"}]
upstreams: [{id: bench, targets: [{address: "127.0.0.1:$BE"}]}]
routes: [{id: all, upstream: bench}]
admin: {address: "127.0.0.1:$ADMIN"}
log: {access: "off", level: "warn"}
YAML
"$TMP/bin/sluice" run -c "$TMP/sluice.yaml" >"$TMP/sluice.log" 2>&1 &
PID[sluice]=$!; STARTED+=("$!")
wait_port backend "$BE"
wait_port sluice "$GW"
wait_port admin "$ADMIN"
"$TMP/bin/loadgen" -url "http://127.0.0.1:$GW/" -c "$CONNS" -d 2s >/dev/null # warm up

TICK_MS=$((1000 / $(getconf CLK_TCK)))
closed=() open=() closed_ticks=0 closed_reqs=0
for r in $(seq 1 "$ROUNDS"); do
	# closed, open, open, closed, closed, open, ...
	if (( (r / 2) % 2 == 1 )); then side=open; else side=closed; fi
	poller=""
	if [ $side = open ]; then
		"$TMP/bin/dashpoll" -admin "http://127.0.0.1:$ADMIN" -upstream bench -d "$((DURATION + 1))s" >"$TMP/poll.$r" &
		poller=$!
	fi
	t0=$(cpu_ticks sluice)
	out=$("$TMP/bin/loadgen" -url "http://127.0.0.1:$GW/" -c "$CONNS" -d "${DURATION}s")
	t1=$(cpu_ticks sluice)
	rps=$(echo "$out" | awk -F'\t' '{print $2}')
	if [ $side = closed ]; then
		closed_ticks=$((closed_ticks + t1 - t0))
		closed_reqs=$((closed_reqs + $(echo "$out" | awk -F'\t' '{print $1}')))
	fi
	if [ -n "$poller" ]; then
		wait "$poller" || { log "dashpoll failed: $(cat "$TMP/poll.$r")"; exit 1; }
		polls=$(cut -f1 "$TMP/poll.$r")
	else
		polls=0
	fi
	printf 'round %d\t%s\treq/s %s\tdashboard polls %s\n' "$r" "$side" "$rps" "$polls"
	if [ $side = open ]; then open+=("$rps"); else closed+=("$rps"); fi
done
mc=$(printf '%s\n' "${closed[@]}" | median)
mo=$(printf '%s\n' "${open[@]}" | median)
printf 'median req/s\tclosed %s\topen %s\topen/closed %s\n' "$mc" "$mo" "$(awk -v o="$mo" -v c="$mc" 'BEGIN{printf "%.4f", o/c}')"

# CPU without load: what the gateway spends per second with the dashboard closed and open.
idle_closed=() idle_open=()
for p in $(seq 1 "$PAIRS"); do
	for side in closed open; do
		poller=""
		t0=$(cpu_ticks sluice)
		if [ $side = open ]; then
			"$TMP/bin/dashpoll" -admin "http://127.0.0.1:$ADMIN" -upstream bench -d "${IDLE}s" >/dev/null &
			poller=$!
		fi
		sleep "$IDLE"
		[ -n "$poller" ] && wait "$poller"
		t1=$(cpu_ticks sluice)
		ms=$(awk -v t=$((t1 - t0)) -v k="$TICK_MS" -v s="$IDLE" 'BEGIN{printf "%.2f", t * k / s}')
		printf 'idle pair %d\t%s\tsluice CPU %s ms/s\n' "$p" "$side" "$ms"
		if [ $side = open ]; then idle_open+=("$ms"); else idle_closed+=("$ms"); fi
	done
done
ic=$(printf '%s\n' "${idle_closed[@]}" | median)
io=$(printf '%s\n' "${idle_open[@]}" | median)
per_req=$(awk -v t="$closed_ticks" -v k="$TICK_MS" -v n="$closed_reqs" 'BEGIN{printf "%.5f", t * k / n}')
awk -v ic="$ic" -v io="$io" -v pr="$per_req" -v rps="$mc" 'BEGIN{
	cost = io - ic; if (cost < 0) cost = 0
	printf "dashboard CPU\tclosed %.2f ms/s\topen %.2f ms/s\tcost %.2f ms/s\n", ic, io, cost
	printf "per request\t%.4f ms CPU\tat %s req/s the gateway uses %.0f ms/s\tthe open dashboard adds %.3f%%\n", pr, rps, pr * rps, 100 * cost / (pr * rps)
}'

