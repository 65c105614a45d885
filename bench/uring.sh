#!/usr/bin/env bash
# bench/uring.sh: bench/gouring's ring options side by side (issue #21; docs/design.md, "io_uring:
# the measured gate"). One backend (bench/backend), goepoll-coro as the anchor, and one gouring
# per variant below, each on its own port; wrk -t1 -c<connections> against each in turn, the
# order rotated each round. Per variant: medians of req/s, p99, CPU per request (utime+stime
# over the round / requests), system calls per request (perf stat on raw_syscalls:sys_enter,
# when perf works), and completions per io_uring_enter over all rounds (gouring prints its
# counts when stopped).
#
#   bash bench/uring.sh [-rounds 3] [-duration 5] [-connections 64] [-variants "base recv-ring"]
#
# Ports: PORT_LO/PORT_SPAN (bench/lib.sh) pick the range. Only processes started here are stopped.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"

declare -A FLAGS=(
	[base]=""
	[multishot-accept]="-multishot-accept"
	[coop]="-setup coop"
	[single-defer]="-setup single,defer"
	[recv-ring]="-recv-ring"
	[fixed-files]="-fixed-files"
	[ring-peek]="-ring-peek"
	[raw-enter]="-raw-enter"
	[coop-peek]="-setup coop -ring-peek"
	[defer-peek]="-setup single,defer -ring-peek"
	[defer-peek-ff]="-setup single,defer -ring-peek -fixed-files"
	[all]="-setup single,defer -ring-peek -fixed-files -multishot-accept -recv-ring -raw-enter"
)
ROUNDS=3 DURATION=5 CONNS=64
VARIANTS="base multishot-accept coop single-defer recv-ring fixed-files ring-peek raw-enter coop-peek defer-peek defer-peek-ff all"
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-variants) VARIANTS=$2; shift ;;
	*) echo "uring.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

bench_init uring
(cd "$ROOT" && go build -o "$TMP/" ./bench/backend ./bench/goepoll ./bench/gouring)
PERF=0
perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1 && PERF=1

bport=$(free_port)
start_proc backend "$bport" "$TMP/backend" -addr "127.0.0.1:$bport"
p=$(free_port)
start_proc goepoll-coro "$p" "$TMP/goepoll" -mode coro -addr "127.0.0.1:$p" -upstream "127.0.0.1:$bport"
list=(goepoll-coro)
for v in $VARIANTS; do
	[ -n "${FLAGS[$v]+x}" ] || { log "unknown variant $v"; exit 2; }
	p=$(free_port)
	# shellcheck disable=SC2086 # a list of flags
	start_proc "gouring-$v" "$p" "$TMP/gouring" ${FLAGS[$v]} -addr "127.0.0.1:$p" -upstream "127.0.0.1:$bport"
	list+=("gouring-$v")
done

printf 'round\tproxy\trequests\trps\tp99_ms\tcpu_us_req\tsyscalls_req\n' >"$TMP/results.tsv"
for name in "${list[@]}"; do wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${PORT[$name]}/" >/dev/null; done
n=${#list[@]}
for r in $(seq 1 "$ROUNDS"); do
	for i in $(seq 0 $((n - 1))); do
		name=${list[$(((i + r - 1) % n))]}
		count=()
		[ "$PERF" = 0 ] || count=(perf stat -e raw_syscalls:sys_enter -x, -o "$TMP/perf" -p "${PID[$name]}" --)
		t0=$(cpu_ticks "$name")
		out=$("${count[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:${PORT[$name]}/")
		t1=$(cpu_ticks "$name")
		req=$(awk '/requests in/{print $1}' <<<"$out")
		rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
		p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v); else {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
		sc=-
		if [ "$PERF" = 1 ]; then
			sc=$(awk -F, -v req="$req" '/raw_syscalls/{printf "%.2f", $1 / req}' "$TMP/perf")
		fi
		cpu=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v req="$req" 'BEGIN{printf "%.1f", d * 1e6 / hz / req}')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$name" "$req" "$rps" "$p99" "$cpu" "$sc" >>"$TMP/results.tsv"
		log "round $r $(printf '%-26s' "$name") $(printf '%8.0f req/s  p99 %7.2f ms  cpu %5s us/req  syscalls %s/req' "$rps" "$p99" "$cpu" "$sc")"
	done
done

flags() { if [ "$1" = goepoll-coro ]; then echo "goepoll -mode coro"; else echo "${FLAGS[${1#gouring-}]:-(none)}"; fi; }

# Stop the gourings to read their io_uring_enter and completion counts.
for name in "${list[@]}"; do
	kill "${PID[$name]}" 2>/dev/null || true
	wait "${PID[$name]}" 2>/dev/null || true
done
echo
echo "medians over $ROUNDS rounds x ${DURATION}s, wrk -t1 -c$CONNS, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'proxy\treq/s\tx coro\tp99 ms\tCPU us/req\tx coro\tsyscalls/req\tcompletions/enter\tflags\n' >"$TMP/summary.tsv"
for name in "${list[@]}"; do
	col() { awk -F'\t' -v p="$name" -v c="$1" '$2==p && $c!="-"{print $c}' "$TMP/results.tsv" | median; }
	ratio=$(awk -F, '/io_uring_enter calls/{gsub(/[^0-9 ]/,""); split($0,a," "); if (a[1]>0) printf "%.1f", a[2]/a[1]}' "$TMP/$name.log")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$(col 4)" "" "$(col 5)" "$(col 6)" "" "$(col 7)" "${ratio:--}" "$(flags "$name")" >>"$TMP/summary.tsv"
done
awk -F'\t' -v OFS='\t' 'NR==2{r=$2; c=$5} NR>1{$3=sprintf("%.2f", $2/r); $6=sprintf("%.2f", $5/c)} {print}' "$TMP/summary.tsv" | column -t -s $'\t'
