#!/usr/bin/env bash
# bench/variants.sh: one Sluice build run as several processes that differ only in their
# environment (experiment switches read at start-up), beside a base build, loaded at the same
# time so that the machine's noise weighs on all alike (design.md, "Yielding before reads that
# usually find nothing").
#
#   bash bench/variants.sh [-rounds 5] [-duration 5] [-connections 64] [-base REV]
#                          [-alone] [-syscalls] [-latency1] NAME=ENV [NAME=ENV ...]
#
# Each NAME=ENV is one process of the working tree's build with ENV (space-separated VAR=value
# pairs, or "-" for none) added to its environment; "base" is Sluice built from -base REV
# (default HEAD) with no additions. All run bench/run.sh's plain config (one catch-all route,
# access log off) in front of one bench/backend (300-byte bodies). Each round runs one
# wrk -t1 -c<connections> --latency per process at the same time, then reports per process
# req/s, p99 and CPU per request (utime+stime from /proc over the round / requests).
# -alone: load the processes one at a time in each round (the order rotated each round) instead
# of together: closer to bench/run.sh (one proxy, its backend and wrk on the machine), but
# what else runs on the machine then weighs on each alone.
# -syscalls: perf stat, attached to every process during each round, also counts system
# calls per request and recvfrom calls that returned EAGAIN per request (needs perf and tracefs).
# -latency1: after the rounds, each process alone under wrk -c1 (one connection: latency when
# nothing else is runnable), -duration seconds each, in turn.
# Prints the medians with ratios to base. Ports: PORT_LO..PORT_LO+PORT_SPAN-1 (default
# 22000-22999). Only processes started here are stopped (trap EXIT).
set -euo pipefail

ROUNDS=5 DURATION=5 CONNS=64 BASE=HEAD SYSCALLS=0 LAT1=0 ALONE=0
VARIANTS=()
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-base) BASE=$2; shift ;;
	-syscalls) SYSCALLS=1 ;;
	-alone) ALONE=1 ;;
	-latency1) LAT1=1 ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	-*) echo "variants.sh: unknown flag $1" >&2; exit 2 ;;
	*=*) VARIANTS+=("$1") ;;
	*) echo "variants.sh: a variant is NAME=ENV, not $1" >&2; exit 2 ;;
	esac
	shift
done
[ ${#VARIANTS[@]} -gt 0 ] || { echo "variants.sh: name at least one NAME=ENV" >&2; exit 2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init variants
PORT_LO=${PORT_LO:-22000} PORT_SPAN=${PORT_SPAN:-1000}
have wrk || { log "variants.sh needs wrk (apt-get install wrk)"; exit 1; }

log "building sluice (working tree and $BASE) and bench/backend"
mkdir -p "$TMP/bin" "$TMP/base"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice ./bench/backend)
(cd "$ROOT" && git archive "$BASE") | tar -x -C "$TMP/base"
(cd "$TMP/base" && go build -o "$TMP/bin/sluice-base" ./cmd/sluice)

config() { # name port backend_port: the plain config's path
	local f="$TMP/$1.yaml"
	{
		printf 'listeners:\n  - address: 127.0.0.1:%s\n' "$2"
		printf 'upstreams:\n  - id: backend\n    targets:\n      - address: 127.0.0.1:%s\n' "$3"
		printf '    keepalive: {max_idle: 256}\n'
		printf 'routes:\n  - id: all\n    upstream: backend\n'
		printf 'log: {level: warn}\n'
		printf 'admin: {address: "127.0.0.1:%s"}\n' "$(free_port)"
	} >"$f"
	echo "$f"
}

bport=$(free_port)
start_proc backend "$bport" "$TMP/bin/backend" -addr "127.0.0.1:$bport" -size 300
list=(base)
port=$(free_port)
start_proc base "$port" "$TMP/bin/sluice-base" run -c "$(config base "$port" "$bport")"
for v in "${VARIANTS[@]}"; do
	name=${v%%=*} env=${v#*=}
	[ "$env" = - ] && env=""
	port=$(free_port)
	# shellcheck disable=SC2086 # ENV is a list of VAR=value words
	start_proc "$name" "$port" env $env "$TMP/bin/sluice" run -c "$(config "$name" "$port" "$bport")"
	list+=("$name")
done

ticks() { awk '{print $14 + $15}' "/proc/${PID[$1]}/stat"; }
hz=$(getconf CLK_TCK)
for p in "${list[@]}"; do wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${PORT[$p]}/" >/dev/null; done
printf 'round\tproxy\trequests\trps\tp99_ms\tcpu_us_req\tsyscalls_req\teagain_req\n' >"$TMP/results.tsv"
# row round proxy ticks wrk_output perf_output: one line of results.tsv.
row() {
	local sc=- ea=-
	if [ -s "$5" ]; then
		sc=$(awk -F, '/raw_syscalls/{print $1}' "$5")
		ea=$(awk -F, '/sys_exit_recvfrom/{print $1}' "$5")
	fi
	awk -v r="$1" -v p="$2" -v d="$3" -v hz="$hz" -v sc="$sc" -v ea="$ea" '
		function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
		/requests in/{n=$1} /^Requests\/sec:/{rps=$2} /^ +99%/{p99=ms($2)}
		END{printf "%d\t%s\t%d\t%.0f\t%.3f\t%.2f\t%s\t%s\n", r, p, n, rps, p99, (n > 0 ? d * 1e6 / hz / n : 0),
			(sc == "-" || n == 0 ? "-" : sprintf("%.2f", sc / n)), (ea == "-" || n == 0 ? "-" : sprintf("%.2f", ea / n))}' "$4" |
		tee -a "$TMP/results.tsv" >&2
}
# load round names...: one wrk per named process, at the same time, each with perf stat
# attached during it (-syscalls); then one row per process.
load() {
	local r=$1 p
	shift
	declare -A T0=()
	local loads=() perfs=()
	for p in "$@"; do
		T0[$p]=$(ticks "$p")
		: >"$TMP/$p.perf"
		if [ "$SYSCALLS" = 1 ]; then
			perf stat -e raw_syscalls:sys_enter -e syscalls:sys_exit_recvfrom --filter 'ret == -11' \
				-x, -o "$TMP/$p.perf" -p "${PID[$p]}" -- sleep "$DURATION" &
			perfs+=("$!")
		fi
	done
	for p in "$@"; do
		wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:${PORT[$p]}/" >"$TMP/$p.wrk" &
		loads+=("$!")
	done
	wait "${loads[@]}" ${perfs[@]+"${perfs[@]}"} # only these: the proxies are this shell's jobs too
	for p in "$@"; do row "$r" "$p" $(($(ticks "$p") - ${T0[$p]})) "$TMP/$p.wrk" "$TMP/$p.perf"; done
}
n=${#list[@]}
for r in $(seq 1 "$ROUNDS"); do
	if [ "$ALONE" = 0 ]; then
		load "$r" "${list[@]}"
		continue
	fi
	for i in $(seq 0 $((n - 1))); do load "$r" "${list[$(((i + r - 1) % n))]}"; done
done
med() { sort -g | awk '{a[NR]=$1} END{ if (NR == 0 || a[1] == "-") print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
col() { awk -F'\t' -v p="$1" -v c="$2" '$2==p{print $c}' "$TMP/results.tsv" | med; }
echo
how="all loaded together"
[ "$ALONE" = 1 ] && how="each loaded alone in turn"
echo "Medians over $ROUNDS rounds x ${DURATION}s, $how, wrk -t1 -c$CONNS each (base: $BASE)"
printf 'proxy\treq/s\tp99_ms\tcpu_us_req\tsyscalls_req\teagain_req\treq/s_x_base\tp99_x_base\tcpu_x_base\n'
brps=$(col base 4) bp99=$(col base 5) bcpu=$(col base 6)
for p in "${list[@]}"; do
	printf '%s\t%s\t%s\t%s\t%s\t%s\t' "$p" "$(col "$p" 4)" "$(col "$p" 5)" "$(col "$p" 6)" "$(col "$p" 7)" "$(col "$p" 8)"
	awk -v a="$(col "$p" 4)" -v b="$(col "$p" 5)" -v c="$(col "$p" 6)" -v x="$brps" -v y="$bp99" -v z="$bcpu" \
		'BEGIN{printf "%.3f\t%.3f\t%.3f\n", a / x, b / y, c / z}'
done
echo "Per round, ratios to base (req/s, p99, cpu):"
for p in "${list[@]}"; do
	[ "$p" = base ] && continue
	awk -F'\t' -v p="$p" '$2=="base"{r[$1]=$4; l[$1]=$5; c[$1]=$6} $2==p{m[$1]=$4; q[$1]=$5; d[$1]=$6}
		END{s=p ":"; for (i = 1; i in m; i++) s = s sprintf(" (%.2f %.2f %.2f)", m[i] / r[i], q[i] / l[i], d[i] / c[i]); print s}' "$TMP/results.tsv"
done
if [ "$LAT1" = 1 ]; then
	echo
	echo "One connection, alone, in turn (wrk -t1 -c1 --latency, ${DURATION}s each):"
	printf 'proxy\treq/s\tp50\tp99\tcpu_us_req\n'
	for p in "${list[@]}"; do
		t0=$(ticks "$p")
		wrk -t1 -c1 -d"${DURATION}s" --latency "http://127.0.0.1:${PORT[$p]}/" >"$TMP/$p.wrk1"
		awk -v p="$p" -v d=$(($(ticks "$p") - t0)) -v hz="$hz" '/requests in/{n=$1} /^Requests\/sec:/{rps=$2} /^ +50%/{p50=$2} /^ +99%/{p99=$2}
			END{printf "%s\t%.0f\t%s\t%s\t%.2f\n", p, rps, p50, p99, (n > 0 ? d * 1e6 / hz / n : 0)}' "$TMP/$p.wrk1"
	done
fi
