#!/usr/bin/env bash
# bench/fullcost.sh: what a production config costs over plain Sluice, in CPU per request,
# and a change's before and after, side by side (docs/benchmarks.md, "sluice-full").
#
#   bash bench/fullcost.sh [-rounds 6] [-duration 5] [-connections 64] [-base REV] [-base-config full|plain] [-together] [-full-fields LIST]
#
# One plain Go backend (bench/backend, 300-byte bodies) behind three Sluice processes at
# once: "plain" (one catch-all route, access log off) and "full" (bench/run.sh's sluice-full:
# 20 routes, the JSON access log to a file, metrics), both built from the working tree, and
# "full-base", the full config (or, with -base-config plain, the plain one: what a change
# costs plain Sluice) on Sluice built from -base REV (default HEAD). wrk (-t1) runs
# against each in turn, the order rotated each round. Reported per round and as medians:
# req/s and the process's CPU per request (utime+stime from /proc over the run, divided by
# the requests wrk counted). CPU per request holds up under a shared machine's noise far
# better than req/s does; the rotation spreads what noise is left over all three.
# -together: each round loads the three at the same time (one wrk each, -connections each),
# so that what else runs on the machine weighs on all three alike (started in an order rotated
# each round); req/s then only compares. -full-fields "time, path, status": "full" logs only
# those fields (log.access_fields); full-base keeps the default line, so with -base HEAD the
# run compares the field list with the default line on one binary. Both binaries are built with -buildvcs=false -trimpath,
# so an A/A run (-base HEAD) compares one binary with itself, and each process runs its own
# copy of its binary file (docs/benchmarks.md, "sluice-full, third pass").
# Ports: PORT_LO..PORT_LO+PORT_SPAN-1 (default 22000-22999). Only processes started here are
# stopped (trap EXIT).
set -euo pipefail

ROUNDS=6 DURATION=5 CONNS=64 BASE=HEAD BASECFG=full TOGETHER=0 FIELDS=
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-base) BASE=$2; shift ;;
	-base-config) BASECFG=$2; shift ;;
	-together) TOGETHER=1 ;;
	-full-fields) FIELDS=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "fullcost.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

case "$BASECFG" in full | plain) ;; *) echo "fullcost.sh: -base-config is full or plain, not $BASECFG" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init fullcost
PORT_LO=${PORT_LO:-22000} PORT_SPAN=${PORT_SPAN:-1000}
have wrk || { log "fullcost.sh needs wrk (apt-get install wrk)"; exit 1; }

log "building sluice (working tree and $BASE) and bench/backend"
mkdir -p "$TMP/bin" "$TMP/base"
(cd "$ROOT" && go build -buildvcs=false -trimpath -o "$TMP/bin/" ./cmd/sluice ./bench/backend)
(cd "$ROOT" && git archive "$BASE") | tar -x -C "$TMP/base"
(cd "$TMP/base" && go build -buildvcs=false -trimpath -o "$TMP/bin/sluice-base" ./cmd/sluice)
# Each process runs its own copy of its binary: two processes of one file share its text in
# the page cache (and so in the CPU caches), which made the third process, on a file of its
# own, read ~2 % more CPU per request than an identical one (docs/benchmarks.md).
cp "$TMP/bin/sluice" "$TMP/bin/sluice-full"

# config name port backend_port: prints the config file path. plain: one catch-all route,
# access log off; otherwise 19 routes the requests do not match, then the catch-all, and the
# access log to a file.
config() {
	local f="$TMP/$1.yaml" i access=off fields=
	{
		printf 'listeners:\n  - address: 127.0.0.1:%s\n' "$2"
		printf 'upstreams:\n  - id: backend\n    targets:\n      - address: 127.0.0.1:%s\n' "$3"
		printf '    keepalive: {max_idle: 256}\n'
		printf 'routes:\n'
		if [ "$1" = full ] || { [ "$1" = full-base ] && [ "$BASECFG" = full ]; }; then
			for i in $(seq 1 19); do
				printf '  - id: r%s\n    match: {hosts: [svc%s.example.com], path_prefix: /api/v%s/, methods: [GET, POST], headers: [{name: X-Tenant, exact: t%s}]}\n    upstream: backend\n' "$i" "$i" "$i" "$i"
			done
			access=$TMP/$1.access.log
		fi
		printf '  - id: all\n    upstream: backend\n'
		[ "$1" = full ] && [ -n "$FIELDS" ] && fields=", access_fields: [$FIELDS]"
		printf 'log: {level: warn, access: "%s"%s}\n' "$access" "$fields"
		printf 'admin: {address: "127.0.0.1:%s"}\n' "$(free_port)"
	} >"$f"
	echo "$f"
}

bport=$(free_port)
start_proc backend "$bport" "$TMP/bin/backend" -addr "127.0.0.1:$bport" -size 300
for name in plain full full-base; do
	port=$(free_port)
	bin=$TMP/bin/sluice
	[ "$name" = full ] && bin=$TMP/bin/sluice-full
	[ "$name" = full-base ] && bin=$TMP/bin/sluice-base
	start_proc "$name" "$port" "$bin" run -c "$(config "$name" "$port" "$bport")"
done

ticks() { awk '{print $14 + $15}' "/proc/${PID[$1]}/stat"; }
hz=$(getconf CLK_TCK)
list=(plain full full-base)
for p in "${list[@]}"; do wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${PORT[$p]}/" >/dev/null; done
printf 'round\tproxy\trequests\trps\tcpu_us_req\n' >"$TMP/results.tsv"
# row round proxy ticks_before ticks_after wrk_output_file: one line of results.tsv.
row() {
	awk -v r="$1" -v p="$2" -v d=$(($4 - $3)) -v hz="$hz" '/requests in/{n=$1} /^Requests\/sec:/{rps=$2}
		END{printf "%d\t%s\t%d\t%.0f\t%.2f\n", r, p, n, rps, (n > 0 ? d * 1e6 / hz / n : 0)}' "$5" |
		tee -a "$TMP/results.tsv" >&2
}
for r in $(seq 1 "$ROUNDS"); do
	if [ "$TOGETHER" = 1 ]; then
		declare -A T0=()
		for p in "${list[@]}"; do T0[$p]=$(ticks "$p"); done
		loads=()
		for i in 0 1 2; do # started in an order rotated each round, as in turn
			p=${list[$(((i + r - 1) % 3))]}
			wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${PORT[$p]}/" >"$TMP/$p.wrk" &
			loads+=("$!")
		done
		wait "${loads[@]}" # only the wrk runs: the proxies are this shell's jobs too
		for p in "${list[@]}"; do row "$r" "$p" "${T0[$p]}" "$(ticks "$p")" "$TMP/$p.wrk"; done
		continue
	fi
	for i in 0 1 2; do
		p=${list[$(((i + r - 1) % 3))]}
		t0=$(ticks "$p")
		wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${PORT[$p]}/" >"$TMP/$p.wrk"
		row "$r" "$p" "$t0" "$(ticks "$p")" "$TMP/$p.wrk"
	done
done
echo
echo "Medians over $ROUNDS rounds x ${DURATION}s, wrk -t1 -c$CONNS (full-base: the $BASECFG config on $BASE)"
printf 'proxy\treq/s\tcpu_us_req\treq/s_x_plain\tcpu_x_plain\n'
med() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
prps=$(awk -F'\t' '$2=="plain"{print $4}' "$TMP/results.tsv" | med)
pcpu=$(awk -F'\t' '$2=="plain"{print $5}' "$TMP/results.tsv" | med)
for p in "${list[@]}"; do
	rps=$(awk -F'\t' -v p="$p" '$2==p{print $4}' "$TMP/results.tsv" | med)
	cpu=$(awk -F'\t' -v p="$p" '$2==p{print $5}' "$TMP/results.tsv" | med)
	awk -v p="$p" -v rps="$rps" -v cpu="$cpu" -v prps="$prps" -v pcpu="$pcpu" \
		'BEGIN{printf "%s\t%.0f\t%.2f\t%.3f\t%.3f\n", p, rps, cpu, rps / prps, cpu / pcpu}'
done
