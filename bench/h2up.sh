#!/usr/bin/env bash
# bench/h2up.sh: HTTP/2 upstreams side by side (docs/benchmarks.md, "HTTP/2 upstreams and gRPC").
#
#   bash bench/h2up.sh [-n 2000] [-duration 5] [-only "sluice nginx haproxy"] [-parts "racy grpc"]
#
# 1. Racy backend. The racy h2c backend of the tests (bench/h2up racy-backend: GOAWAY with a
#    last-stream-id below streams in flight after 2..10 streams per connection, 5% of streams
#    refused, idle connections closed at 150 ms) behind each proxy, which speaks HTTP/2 to it
#    (sluice: protocol h2c; nginx: grpc_pass, its only HTTP/2 upstream; HAProxy: server ...
#    proto h2). An HTTP/1.1 client sends a GET/POST mix (-n requests, 8 workers, pausing past
#    the idle close now and then). Reported per proxy: client-visible failures and request
#    ids the backend processed more than once (duplicates). A fresh backend per proxy.
# 2. gRPC unary calls/s. A grpc-go server behind each proxy (h2c in front, h2c behind;
#    nginx: listen ... http2 + grpc_pass; HAProxy: bind ... proto h2 + server ... proto h2),
#    loaded by bench/h2up grpc-load (16 workers, one connection each, -duration seconds), one
#    side-by-side run (fixed order: sluice, nginx, HAProxy, then the backend direct). The machine may be shared: compare ratios.
#    Per row also the CPU per call: utime+stime of the proxy's processes (nginx: its workers
#    too) over its run divided by its calls, in us (direct: the backend's), and the backend's
#    own CPU per call in that run.
#
# -parts picks the sections (racy, grpc). Ports PORT_LO..PORT_LO+PORT_SPAN-1 on 127.0.0.1
# (environment; default 21000 and 1000). Only processes started here are stopped.
set -euo pipefail

N=2000 DURATION=5 ONLY="sluice nginx haproxy" PARTS="racy grpc"
while [ $# -gt 0 ]; do
	case "$1" in
	-n) N=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-only) ONLY=$2; shift ;;
	-parts) PARTS=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "h2up.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init h2up

# free_port (bench/lib.sh) hands out ports from PORT_LO..PORT_LO+PORT_SPAN-1 only.
PORT_LO=${PORT_LO:-21000} PORT_SPAN=${PORT_SPAN:-1000}
HZ=$(getconf CLK_TCK)

log "building sluice and bench/h2up into $TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice ./bench/h2up)

# start name cmd...: runs cmd in the background, logging to $TMP/name.log.
start() {
	local name=$1; shift
	"$@" >"$TMP/$name.log" 2>&1 &
	PID[$name]=$!
	STARTED+=("$!")
}

stop() {
	kill "${PID[$1]}" 2>/dev/null || true
	wait "${PID[$1]}" 2>/dev/null || true
}

# proxy name listen_port backend_port grpc(0|1): starts one proxy in front of the backend.
proxy() {
	local name=$1 lp=$2 bp=$3 grpc=$4
	case $name in
	sluice)
		local protos="[http1]"
		[ "$grpc" = 1 ] && protos="[http1, h2c]"
		cat >"$TMP/sluice.yaml" <<-EOF
			listeners:
			  - address: 127.0.0.1:$lp
			    protocols: $protos
			upstreams:
			  - id: b
			    targets: [{address: "127.0.0.1:$bp"}]
			    protocol: h2c
			routes:
			  - {id: all, upstream: b}
			log: {access: "off", level: warn}
			admin: {enabled: false}
		EOF
		start sluice "$TMP/bin/sluice" run -c "$TMP/sluice.yaml" ;;
	nginx)
		local h2=""
		[ "$grpc" = 1 ] && h2=" http2"
		mkdir -p "$TMP/nginx"
		cat >"$TMP/nginx.conf" <<-EOF
			daemon off; worker_processes 2; pid $TMP/nginx/pid; error_log $TMP/nginx/error.log warn;
			events { worker_connections 4096; }
			http {
			  access_log off; client_body_temp_path $TMP/nginx;
			  upstream b { server 127.0.0.1:$bp; keepalive 64; }
			  server { listen 127.0.0.1:$lp$h2; location / { grpc_pass grpc://b; } }
			}
		EOF
		start nginx nginx -c "$TMP/nginx.conf" ;;
	haproxy)
		local fproto=""
		[ "$grpc" = 1 ] && fproto=" proto h2"
		cat >"$TMP/haproxy.cfg" <<-EOF
			global
			  nbthread 2
			defaults
			  mode http
			  timeout connect 5s
			  timeout client 30s
			  timeout server 30s
			frontend f
			  bind 127.0.0.1:$lp$fproto
			  default_backend b
			backend b
			  retry-on all-retryable-errors
			  server s 127.0.0.1:$bp proto h2
		EOF
		start haproxy haproxy -f "$TMP/haproxy.cfg" ;;
	esac
	wait_port "$name" "$lp"
}

have nginx || log "nginx not found: skipped"
have haproxy || log "haproxy not found: skipped"

# grpc_row name load_pid_name: runs grpc-load against port $lp and prints name, calls/s, errors
# and the CPU per call of PID[load_pid_name]'s processes and of the backend's.
grpc_row() {
	local out p0 p1 b0 b1
	p0=$(cpu_ticks "$2") b0=$(cpu_ticks grpcb)
	out=$("$TMP/bin/h2up" grpc-load -addr "127.0.0.1:$lp" -c 16 -d "${DURATION}s")
	p1=$(cpu_ticks "$2") b1=$(cpu_ticks grpcb)
	awk -v n="$1" -v dp=$((p1 - p0)) -v db=$((b1 - b0)) -v hz="$HZ" '{
		match($0, /"calls": *[0-9]+/); c = substr($0, RSTART, RLENGTH); sub(/.*: */, "", c)
		match($0, /"calls_per_second": *[0-9]+/); r = substr($0, RSTART, RLENGTH); sub(/.*: */, "", r)
		match($0, /"errors": *[0-9]+/); e = substr($0, RSTART, RLENGTH); sub(/.*: */, "", e)
		printf "%-8s %7d calls/s  errors %d  cpu %6.1f us/call  backend cpu %6.1f us/call\n", n, r, e, (c > 0 ? dp * 1e6 / hz / c : 0), (c > 0 ? db * 1e6 / hz / c : 0)
	}' <<<"$out"
}

case " $PARTS " in *" racy "*) ;; *) ONLY_RACY="" ;; esac
log "== 1. racy HTTP/2 backend, $N requests (GET/POST mix) through each proxy"
for p in ${ONLY_RACY-$ONLY}; do
	[ "$p" = sluice ] || have "$p" || continue
	bp=$(free_port); lp=$(free_port)
	start racy "$TMP/bin/h2up" racy-backend -addr "127.0.0.1:$bp"
	wait_port racy "$bp"
	proxy "$p" "$lp" "$bp" 0
	client=$("$TMP/bin/h2up" racy-client -url "http://127.0.0.1:$lp/r" -n "$N" -c 8)
	stop "$p"
	kill -TERM "${PID[racy]}"; wait "${PID[racy]}" 2>/dev/null || true
	printf '%-8s client %s backend %s\n' "$p" "$client" "$(tail -1 "$TMP/racy.log")"
done

case " $PARTS " in *" grpc "*) ;; *) exit 0 ;; esac
log "== 2. gRPC unary calls/s, ${DURATION}s each, 16 workers"
gp=$(free_port)
start grpcb "$TMP/bin/h2up" grpc-backend -addr "127.0.0.1:$gp"
wait_port grpcb "$gp"
for p in $ONLY; do
	[ "$p" = sluice ] || have "$p" || continue
	lp=$(free_port)
	proxy "$p" "$lp" "$gp" 1
	grpc_row "$p" "$p"
	stop "$p"
done
lp=$gp grpc_row direct grpcb
