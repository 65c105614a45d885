#!/usr/bin/env bash
# bench/tracing.sh: what OpenTelemetry tracing costs in req/s, side by side in one run
# (docs/tracing.md, docs/design.md "Tracing without the SDK on the request path").
#
#   bash bench/tracing.sh [-rounds 3] [-duration 5] [-connections 32]
#
# One plain Go backend (bench/backend) behind four sluice processes on loopback ports
# 23000-23999: no tracing block ("off"), and tracing at ratios 0, 0.01 and 1, all exporting
# over OTLP/HTTP to bench/otlpsink. Each round, one wrk (-t1) per sluice runs against all
# four at once; requests carry no traceparent, so the ratio decides. Reported: req/s medians
# over rounds, each against "off" in the same round, and the spread (min-max of the
# per-round ratios).
# Only processes started here are stopped (trap EXIT).
set -euo pipefail

ROUNDS=3 DURATION=5 CONNS=32
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "tracing.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init trace
PORT_LO=${PORT_LO:-23000} PORT_SPAN=${PORT_SPAN:-1000}

have wrk || { log "tracing.sh needs wrk (apt-get install wrk)"; exit 1; }
log "building sluice, the backend and the OTLP sink into $TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice ./bench/backend ./bench/otlpsink)

BPORT=$(free_port); PORT[backend]=$BPORT
"$TMP/bin/backend" -addr "127.0.0.1:$BPORT" -size 300 >"$TMP/backend.log" 2>&1 &
STARTED+=("$!"); PID[backend]=$!
wait_port backend "$BPORT"
SPORT=$(free_port); PORT[sink]=$SPORT
"$TMP/bin/otlpsink" -addr "127.0.0.1:$SPORT" >"$TMP/sink.log" 2>&1 &
STARTED+=("$!"); PID[sink]=$!
wait_port sink "$SPORT"

servers=(off ratio0 ratio0.01 ratio1)
for name in "${servers[@]}"; do
	port=$(free_port); PORT[$name]=$port
	{
		printf 'listeners: [{address: "127.0.0.1:%s"}]\n' "$port"
		printf 'upstreams: [{id: b, targets: [{address: "127.0.0.1:%s"}], keepalive: {max_idle: 256}}]\n' "$BPORT"
		printf 'log: {level: warn, access: "off"}\nadmin: {enabled: false}\nroutes:\n  - id: all\n    upstream: b\n'
		[ "$name" != off ] && printf 'tracing: {endpoint: "http://127.0.0.1:%s/v1/traces", ratio: %s}\n' "$SPORT" "${name#ratio}"
	} >"$TMP/$name.yaml"
	GOMAXPROCS=1 "$TMP/bin/sluice" run -c "$TMP/$name.yaml" >"$TMP/$name.log" 2>&1 &
	STARTED+=("$!"); PID[$name]=$!
	wait_port "$name" "$port"
done

run() { # name: req/s of one wrk run
	wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${PORT[$1]}/x" 2>&1 | awk '/Requests\/sec/ { printf "%.0f\n", $2 }'
}

# Each round runs wrk against the four at the same time: they share the machine's CPUs (and
# whatever else runs on it) in the same seconds, so a config that costs more CPU per request
# gets fewer requests through, and load from elsewhere hits all four alike.
results="$TMP/results.tsv"
for r in $(seq 1 "$ROUNDS"); do
	for s in "${servers[@]}"; do run "$s" >"$TMP/round.$s" & done
	wait_jobs=$(jobs -p | grep -v -x -F -f <(printf '%s\n' "${STARTED[@]}") || true)
	for j in $wait_jobs; do wait "$j"; done
	for s in "${servers[@]}"; do
		printf '%s\t%s\t%s\n' "$r" "$s" "$(cat "$TMP/round.$s")" >>"$results"
		log "$(printf 'round %s %-10s %s req/s' "$r" "$s" "$(cat "$TMP/round.$s")")"
	done
done

echo
echo "Tracing: req/s, medians over $ROUNDS rounds x ${DURATION}s, $CONNS connections, wrk -t1, sluice GOMAXPROCS=1; machine: $(nproc) CPUs, shared with other work"
printf 'config\treq_per_s\tx_off\tx_off_min\tx_off_max\n'
for s in "${servers[@]}"; do
	rps=$(awk -F'\t' -v s="$s" '$2==s { print $3 }' "$results" | median)
	ratios=$(awk -F'\t' -v s="$s" '$2=="off" { off[$1]=$3 } $2==s { v[$1]=$3 } END { for (r in v) printf "%.4f\n", v[r]/off[r] }' "$results" | sort -g)
	printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$rps" "$(median <<<"$ratios")" "$(head -1 <<<"$ratios")" "$(tail -1 <<<"$ratios")"
done
