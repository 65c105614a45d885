#!/usr/bin/env bash
# bench/h2.sh: HTTP/2 over TLS downstream side by side (docs/benchmarks.md, "HTTP/2").
#
#   bash bench/h2.sh [-rounds 3] [-duration 6] [-only "sluice nginx"] [-modes "streams conns"] [-base REV]
#                    [-rate 4000]
#
# One plain Go backend (bench/backend, 300-byte bodies, HTTP/1.1) behind sluice
# (protocols: [http1, h2]), nginx (listen ... ssl http2) and HAProxy (alpn h2,http/1.1), each
# terminating TLS on its own loopback port (20000-20999) with the same ECDSA P-256
# certificate, upstream keep-alive on, access logs off. Per proxy, in rotated order each
# round, h2load (Debian nghttp2-client) runs:
#   streams  -c 4 -m 32: few connections, many concurrent streams on each
#   paced    streams at a fixed offered load (--rps RATE per connection, -rate, default 4000:
#            16k requests/s, below every proxy's ceiling here), so that p99 compares latency
#            at the same load, not at each proxy's own saturation (not run unless -modes says)
#   conns    -c 64 -m 1: many connections, one stream at a time on each
# Reported: medians of requests/s, of the p99 request time (from h2load's per-request log)
# and of the CPU time per request (utime+stime of the proxy's processes), with ratios to
# nginx, and the spread of requests/s. Only processes started here are stopped.
# -base REV also runs "sluice-base", Sluice built from git revision REV with the same config,
# in the same rotation: a change's effect is then read from the per-round ratios sluice /
# sluice-base printed at the end (the same round is the same minute of a shared machine's
# load), and -base HEAD is an A/A run that shows the noise floor of those ratios. Each run's
# line also has p50 and p99.9 and the load average; the p99 of a saturated 2-core machine
# moves with what else runs (docs/design.md, "HTTP/2 streams mode: where the p99 comes from").
# SLUICE_ENV="VAR=value ..." in the environment is added to the "sluice" process's alone (not
# sluice-base's): with -base HEAD, a runtime setting (GOGC=400, GOMAXPROCS=1) against none.
set -euo pipefail

ROUNDS=3 DURATION=6 ONLY="" BASE="" MODES="streams conns" RATE=4000
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-only) ONLY=$2; shift ;;
	-base) BASE=$2; shift ;;
	-modes) MODES=$2; shift ;;
	-rate) RATE=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "h2.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init h2

# free_port (bench/lib.sh) hands out ports from PORT_LO..PORT_LO+PORT_SPAN-1 only.
PORT_LO=${PORT_LO:-20000} PORT_SPAN=${PORT_SPAN:-1000} # override to stay in a port range of your own

have h2load || { log "h2load is needed (apt-get install nghttp2-client)"; exit 1; }
log "building sluice and the backend into $TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice ./bench/backend)
if [ -n "$BASE" ]; then
	log "building sluice-base from $BASE"
	mkdir -p "$TMP/base"
	(cd "$ROOT" && git archive "$BASE") | tar -x -C "$TMP/base"
	(cd "$TMP/base" && go build -buildvcs=false -o "$TMP/bin/sluice-base" ./cmd/sluice)
fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 -nodes -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/both.pem"

BPORT=$(free_port); PORT[backend]=$BPORT
"$TMP/bin/backend" -addr "127.0.0.1:$BPORT" -size 300 >"$TMP/backend.log" 2>&1 &
STARTED+=("$!")
wait_port backend "$BPORT"

start() { # name port
	local name=$1 port=$2 dir="$TMP/$1"
	PORT[$name]=$port
	mkdir -p "$dir"; chmod 755 "$dir"
	case "$name" in
	sluice | sluice-base)
		cat >"$dir/sluice.yaml" <<-EOF
			listeners:
			  - address: 127.0.0.1:$port
			    protocols: [http1, h2]
			    tls: {certificates: [{cert_file: $TMP/cert.pem, key_file: $TMP/key.pem}]}
			    http2: {max_concurrent_streams: 128}
			upstreams: [{id: b, targets: [{address: 127.0.0.1:$BPORT}], keepalive: {max_idle: 256}}]
			routes: [{id: all, upstream: b}]
			log: {level: warn, access: "off"}
			admin: {enabled: false}
		EOF
		local extra=()
		[ "$name" = sluice ] && [ -n "${SLUICE_ENV:-}" ] && read -ra extra <<<"$SLUICE_ENV"
		env "${extra[@]}" "$TMP/bin/$name" run -c "$dir/sluice.yaml" >"$TMP/$name.log" 2>&1 & ;;
	nginx)
		local user=""
		[ "$(id -u)" = 0 ] && user="user root;"
		cat >"$dir/nginx.conf" <<-EOF
			$user
			worker_processes auto;
			pid $dir/nginx.pid;
			error_log $dir/error.log warn;
			events { worker_connections 4096; }
			http {
			    access_log off;
			    upstream b { server 127.0.0.1:$BPORT; keepalive 256; }
			    server {
			        listen 127.0.0.1:$port ssl http2;
			        ssl_certificate $TMP/cert.pem;
			        ssl_certificate_key $TMP/key.pem;
			        ssl_protocols TLSv1.2 TLSv1.3; # nginx before 1.23.4 leaves 1.3 off
			        http2_max_concurrent_streams 128;
			        keepalive_requests 1000000;
			        location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; }
			    }
			}
		EOF
		nginx -p "$dir/" -e stderr -c "$dir/nginx.conf" -g 'daemon off;' >"$TMP/$name.log" 2>&1 & ;;
	haproxy)
		cat >"$dir/haproxy.cfg" <<-EOF
			global
			    nbthread 2
			    maxconn 4096
			    tune.h2.max-concurrent-streams 128
			defaults
			    mode http
			    option http-keep-alive
			    http-reuse always
			    timeout connect 5s
			    timeout client 60s
			    timeout server 30s
			frontend fe
			    bind 127.0.0.1:$port ssl crt $TMP/both.pem alpn h2,http/1.1
			    default_backend be
			backend be
			    server s1 127.0.0.1:$BPORT pool-max-conn 256
		EOF
		haproxy -db -f "$dir/haproxy.cfg" >"$TMP/$name.log" 2>&1 & ;;
	esac
	PID[$name]=$!
	STARTED+=("$!")
	wait_port "$name" "$port"
}

proxies=()
all=(sluice nginx haproxy)
[ -n "$BASE" ] && all=(sluice sluice-base nginx haproxy)
for p in "${all[@]}"; do
	[ -n "$ONLY" ] && [ "$p" != sluice-base ] && [[ " $ONLY " != *" $p "* ]] && continue
	if [[ $p != sluice* ]] && ! have "$p"; then log "note: $p is not installed; skipped"; continue; fi
	start "$p" "$(free_port)" && proxies+=("$p")
done

TICK=$(getconf CLK_TCK)

# run proxy mode: prints "requests rps p99_ms cpu_us_per_request p50_ms p999_ms load"
run() {
	local p=$1 mode=$2 url="https://localhost:${PORT[$1]}/" out rps req p99 flags before after
	case "$mode" in
	streams) flags="-c 4 -m 32" ;;
	conns) flags="-c 64 -m 1" ;;
	paced) flags="-c 4 -m 32 --rps $RATE" ;;
	esac
	rm -f "$TMP/req.log"
	before=$(cpu_ticks "$p")
	# shellcheck disable=SC2086
	out=$(h2load $flags -t 1 -D "$DURATION" --warm-up-time 1 --log-file "$TMP/req.log" "$url" 2>&1)
	after=$(cpu_ticks "$p")
	rps=$(awk '/^finished in/{gsub(",","",$5); print $4}' <<<"$out")
	req=$(awk '/^requests:/{print $8}' <<<"$out")
	grep -q ', 0 failed, 0 errored' <<<"$out" || log "$p $mode: h2load saw failures: $(grep '^requests:' <<<"$out")"
	# The log's third column is each request's time in microseconds.
	read -r p50 p99 p999 < <(awk '{print $3}' "$TMP/req.log" | sort -n |
		awk '{a[NR]=$1} END{ if (NR) printf "%.2f %.2f %.2f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000, a[int(NR*0.999)]/1000; else print "0 0 0" }')
	awk -v r="${req:-0}" -v s="${rps:-0}" -v q="$p99" -v t=$((after - before)) -v hz="$TICK" \
		-v m="$p50" -v x="$p999" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
		'BEGIN{ printf "%d\t%.0f\t%s\t%.1f\t%s\t%s\t%s\n", r, s, q, (r>0 ? t/hz*1e6/r : 0), m, x, l }'
}

results="$TMP/results.tsv"
for mode in $MODES; do
	for r in $(seq 1 "$ROUNDS"); do
		n=${#proxies[@]}
		for i in $(seq 0 $((n - 1))); do
			p=${proxies[$(((i + r) % n))]}
			line=$(run "$p" "$mode")
			printf '%s\t%s\t%s\t%s\n' "$mode" "$r" "$p" "$line" >>"$results"
			log "$(printf '%-8s round %s %-8s %s' "$mode" "$r" "$p" "$line")"
		done
	done
done

echo
echo "HTTP/2 over TLS: medians over $ROUNDS rounds x ${DURATION}s (streams: h2load -c4 -m32; conns: h2load -c64 -m1; paced: -c4 -m32 --rps $RATE)"
printf 'mode\tproxy\trps\trps_vs_nginx\tp99_ms\tp99_vs_nginx\tcpu_us_req\tcpu_vs_nginx\trps_min\trps_max\n'
for mode in $MODES; do
	nrps=$(awk -F'\t' -v m="$mode" '$1==m && $3=="nginx"{print $5}' "$results" | median)
	np99=$(awk -F'\t' -v m="$mode" '$1==m && $3=="nginx"{print $6}' "$results" | median)
	ncpu=$(awk -F'\t' -v m="$mode" '$1==m && $3=="nginx"{print $7}' "$results" | median)
	for p in "${proxies[@]}"; do
		rps=$(awk -F'\t' -v m="$mode" -v p="$p" '$1==m && $3==p{print $5}' "$results" | median)
		p99=$(awk -F'\t' -v m="$mode" -v p="$p" '$1==m && $3==p{print $6}' "$results" | median)
		cpu=$(awk -F'\t' -v m="$mode" -v p="$p" '$1==m && $3==p{print $7}' "$results" | median)
		lo=$(awk -F'\t' -v m="$mode" -v p="$p" '$1==m && $3==p{print $5}' "$results" | sort -g | head -1)
		hi=$(awk -F'\t' -v m="$mode" -v p="$p" '$1==m && $3==p{print $5}' "$results" | sort -g | tail -1)
		awk -v m="$mode" -v p="$p" -v r="$rps" -v q="$p99" -v c="$cpu" -v nr="${nrps:-0}" -v nq="${np99:-0}" -v nc="${ncpu:-0}" -v lo="$lo" -v hi="$hi" \
			'BEGIN{ printf "%s\t%s\t%.0f\t%s\t%.2f\t%s\t%.1f\t%s\t%.0f\t%.0f\n", m, p, r, (nr>0? sprintf("%.2f", r/nr) : "-"), q, (nq>0? sprintf("%.2f", q/nq) : "-"), c, (nc>0? sprintf("%.2f", c/nc) : "-"), lo, hi }'
	done
done

[ -n "$BASE" ] || exit 0
echo
echo "sluice / sluice-base ($BASE) per round (same round, minutes apart at most), with nginx's p99 for scale"
printf 'mode\tround\trps_ratio\tp50_ratio\tp99_ratio\tp999_ratio\tcpu_ratio\tload\tnginx_p99_ms\n'
awk -F'\t' '{ k=$1 "\t" $2; v[k, $3]=$0 } $3=="sluice"{ ks[++n]=k }
	END{ for (i=1; i<=n; i++) { k=ks[i]; if (!((k, "sluice-base") in v)) continue
		split(v[k, "sluice"], a, "\t"); split(v[k, "sluice-base"], b, "\t"); split(v[k, "nginx"], g, "\t")
		printf "%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%s\n", k, a[5]/b[5], a[8]/b[8], a[6]/b[6], a[9]/b[9], a[7]/b[7], a[10], (g[6]=="" ? "-" : g[6]) } }' "$results"
