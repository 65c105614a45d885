#!/usr/bin/env bash
# bench/compress.sh: CPU per MiB compressed, Sluice's compress plugin against nginx's gzip
# at the same level, side by side (docs/design.md, "Response compression").
#
#   bash bench/compress.sh [-rounds 3] [-duration 5] [-connections 4] [-size 131072] [-levels "1 5"]
#
# One nginx serves a compressible JSON file (made here, -size bytes, Content-Length) as the
# origin. In front of it, on loopback ports 21000-21999: nginx with gzip on at each level
# (gzip_proxied any, upstream keep-alive) and Sluice with compress (encodings [gzip] at the
# same level), plus Sluice with zstd (level 3) and brotli (level 4) for reference. Each
# round runs every row once, in rotated order: wrk -t1 -c<connections> -d<duration> with
# Accept-Encoding set to the row's coding. Per row: CPU (utime+stime of the proxy's
# processes) per MiB of uncompressed body, requests/s, and the compressed size. Reported:
# each round's numbers, then per row the median and the spread (min-max) of CPU per MiB
# and its ratio to nginx's gzip at the same level. Only processes started here are stopped.
set -euo pipefail

ROUNDS=3 DURATION=5 CONNS=4 SIZE=131072 LEVELS="1 5"
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-size) SIZE=$2; shift ;;
	-levels) LEVELS=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "compress.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT_LO=${PORT_LO:-21000} PORT_SPAN=${PORT_SPAN:-1000}
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init compress
have wrk || { log "wrk is needed (apt-get install wrk)"; exit 1; }
have nginx || { log "nginx is needed (apt-get install nginx)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root;"
HZ=$(getconf CLK_TCK)

log "building sluice into $TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice)

# The body: JSON records, like an API listing (about 8:1 with gzip -5).
mkdir -p "$TMP/www"
awk -v size="$SIZE" 'BEGIN { printf "["; n = 1
	while (n < size) { s = sprintf("{\"id\":%d,\"name\":\"item %d\",\"price\":%d.%02d,\"tags\":[\"alpha\",\"beta\"],\"in_stock\":%s},\n", NR_I, NR_I * 7, NR_I % 1000, NR_I % 100, (NR_I % 3 ? "true" : "false")); NR_I++; printf "%s", s; n += length(s) } }' >"$TMP/www/data.json"
truncate -s "$SIZE" "$TMP/www/data.json"

nginx_start() { # name port body-of-server-block
	local name=$1 port=$2 dir="$TMP/$1"
	PORT[$name]=$port
	mkdir -p "$dir"; chmod 755 "$dir"
	cat >"$dir/nginx.conf" <<-EOF
		$USER_LINE
		worker_processes 2;
		daemon off;
		pid $dir/nginx.pid;
		error_log $dir/error.log warn;
		events { worker_connections 1024; }
		http {
		    access_log off;
		    types { application/json json; }
		    upstream origin { server 127.0.0.1:${PORT[origin]:-1}; keepalive 64; }
		    server {
		        listen 127.0.0.1:$port;
		        $3
		    }
		}
	EOF
	"$NGINX" -c "$dir/nginx.conf" -p "$dir" >"$TMP/$name.log" 2>&1 &
	PID[$name]=$!; STARTED+=("$!")
	wait_port "$name" "$port"
}

sluice_start() { # name port encoding level
	local name=$1 port=$2 dir="$TMP/$1"
	PORT[$name]=$port
	mkdir -p "$dir"
	cat >"$dir/sluice.yaml" <<-EOF
		listeners: [{address: 127.0.0.1:$port}]
		upstreams: [{id: o, targets: [{address: 127.0.0.1:${PORT[origin]}}], keepalive: {max_idle: 64}}]
		routes:
		  - id: all
		    upstream: o
		    plugins:
		      - name: compress
		        config: {encodings: [$3], levels: {$3: $4}}
		log: {level: warn, access: "off"}
		admin: {address: "127.0.0.1:$(free_port)"}
	EOF
	"$TMP/bin/sluice" run -c "$dir/sluice.yaml" >"$TMP/$name.log" 2>&1 &
	PID[$name]=$!; STARTED+=("$!")
	wait_port "$name" "$port"
}

nginx_start origin "$(free_port)" "root $TMP/www; location / { }"
ROWS=()
declare -A ENC=()
for l in $LEVELS; do
	nginx_start "nginx-gzip-$l" "$(free_port)" "gzip on; gzip_comp_level $l; gzip_types application/json; gzip_proxied any; gzip_min_length 1024; location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
	sluice_start "sluice-gzip-$l" "$(free_port)" gzip "$l"
	ROWS+=("nginx-gzip-$l" "sluice-gzip-$l")
	ENC[nginx-gzip-$l]=gzip ENC[sluice-gzip-$l]=gzip
done
sluice_start sluice-zstd-3 "$(free_port)" zstd 3
sluice_start sluice-br-4 "$(free_port)" br 4
ROWS+=(sluice-zstd-3 sluice-br-4)
ENC[sluice-zstd-3]=zstd ENC[sluice-br-4]=br

# The compressed size, and a check that each row compresses.
declare -A OUT=()
for r in "${ROWS[@]}"; do
	OUT[$r]=$(curl -sS -H "Accept-Encoding: ${ENC[$r]}" -o "$TMP/$r.out" -w '%{size_download}' "http://127.0.0.1:${PORT[$r]}/data.json")
	ce=$(curl -sS -H "Accept-Encoding: ${ENC[$r]}" -o /dev/null -D - "http://127.0.0.1:${PORT[$r]}/data.json" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding"{print $2}')
	[ "$ce" = "${ENC[$r]}" ] || { log "$r: Content-Encoding \"$ce\", want ${ENC[$r]}"; exit 1; }
done

declare -A CPU=() RPS=()
log "machine: $(nproc) cores, shared with other work; body $SIZE bytes; wrk -t1 -c$CONNS -d${DURATION}s"
printf '%-16s %6s %12s %10s %10s\n' row round cpu_ms/MiB req/s out_bytes
for round in $(seq 1 "$ROUNDS"); do
	n=${#ROWS[@]}
	for i in $(seq 0 $((n - 1))); do
		r=${ROWS[$(((i + round - 1) % n))]}
		before=$(cpu_ticks "$r")
		out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Accept-Encoding: ${ENC[$r]}" "http://127.0.0.1:${PORT[$r]}/data.json" 2>&1)
		after=$(cpu_ticks "$r")
		reqs=$(awk '/requests in/ {print $1}' <<<"$out")
		rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
		cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$reqs" -v s="$SIZE" 'BEGIN { printf "%.2f", (t * 1000 / hz) / (n * s / 1048576) }')
		CPU[$r]+="$cpu " RPS[$r]+="$rps "
		printf '%-16s %6s %12s %10s %10s\n' "$r" "$round" "$cpu" "$rps" "${OUT[$r]}"
	done
done

echo
echo "medians over $ROUNDS rounds (spread min-max); ratio: CPU per MiB / nginx gzip at the same level"
printf '%-16s %12s %16s %10s %10s %8s\n' row cpu_ms/MiB spread req/s out_bytes ratio
for r in "${ROWS[@]}"; do
	med=$(tr ' ' '\n' <<<"${CPU[$r]}" | grep . | median)
	spread=$(tr ' ' '\n' <<<"${CPU[$r]}" | grep . | sort -g | awk 'NR==1{lo=$1} {hi=$1} END{print lo "-" hi}')
	rps=$(tr ' ' '\n' <<<"${RPS[$r]}" | grep . | median)
	ratio=""
	if [[ $r == sluice-gzip-* ]]; then
		ref=$(tr ' ' '\n' <<<"${CPU[nginx-gzip-${r##*-}]}" | grep . | median)
		ratio=$(awk -v a="$med" -v b="$ref" 'BEGIN { printf "%.2f", a / b }')
	fi
	printf '%-16s %12s %16s %10s %10s %8s\n' "$r" "$med" "$spread" "$rps" "${OUT[$r]}" "$ratio"
done
