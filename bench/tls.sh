#!/usr/bin/env bash
# bench/tls.sh: TLS termination side by side (docs/benchmarks.md, "TLS").
#
#   bash bench/tls.sh [-rounds 3] [-duration 6] [-connections 64] [-only "sluice nginx"]
#                     [-modes "keepalive resumed full"] [-base REV] [-access] [-syscalls]
#                     [-same-headers]
#
# One plain Go backend (bench/backend, 300-byte bodies) behind sluice, nginx, HAProxy and
# Caddy, each terminating TLS on its own loopback port with the same ECDSA P-256 certificate
# (made here) and upstream keep-alive on, access logs off. Per proxy, in rotated order each
# round:
#   keepalive  wrk -t1 -c<connections> over kept-alive TLS connections (small GETs)
#   resumed    bench/loadgen -new -resume: a new connection per request, TLS session resumed
#   full       bench/loadgen -new: a new connection per request, full handshake each time
#   resumed12, full12  the same with the client capped at TLS 1.2 (not run unless -modes says)
# Every proxy speaks TLS 1.2 and 1.3 (nginx before 1.23.4 leaves 1.3 off unless told: its
# resumptions were then TLS 1.2 ones, which skip the key exchange that TLS 1.3 resumption
# keeps, and it looked twice as cheap as it is).
# Reported: medians of requests/s and CPU per request (utime+stime of the proxy's processes;
# the backend's too, per request of that proxy's rounds)
# with ratios to nginx. Only processes started here are stopped.
# -base REV also runs "sluice-base", Sluice built from git revision REV with the same config,
# in the same rotation, and prints the per-round ratios sluice / sluice-base at the end (the
# same round is the same minute of a shared machine's load; -base HEAD is an A/A run that
# shows the noise floor). -access turns the access logs on, each to a file: Sluice's default
# line (with its TLS fields) and nginx's default combined format; HAProxy and Caddy keep
# theirs off. -syscalls also counts each proxy's system calls per request in keepalive mode
# (perf stat on the raw_syscalls:sys_enter tracepoint, attached to the proxy's processes),
# printed per round and as a median column.
# -same-headers makes nginx do what Sluice does by default for every request: send the
# backend X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and an X-Request-Id, and
# return the X-Request-Id to the client (without it nginx forwards the client's headers as
# they are, and the backend parses four fields fewer per request).
set -euo pipefail

ROUNDS=3 DURATION=6 CONNS=64 ONLY="" MODES="keepalive resumed full" BASE="" ACCESS="" SYSCALLS="" NGINX_SAME=""
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-only) ONLY=$2; shift ;;
	-modes) MODES=$2; shift ;;
	-base) BASE=$2; shift ;;
	-access) ACCESS=1 ;;
	-syscalls) SYSCALLS=1 ;;
	-same-headers) NGINX_SAME='proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $http_host; proxy_set_header X-Request-Id $request_id; add_header X-Request-Id $request_id always;' ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "tls.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init tls

log "building sluice and the bench programs into $TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice ./bench/backend ./bench/loadgen)
[ -z "$BASE" ] || build_base "$BASE"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 -nodes -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/both.pem"

BPORT=$(free_port); PORT[backend]=$BPORT
"$TMP/bin/backend" -addr "127.0.0.1:$BPORT" -size 300 >"$TMP/backend.log" 2>&1 &
STARTED+=("$!")
PID[backend]=$!
wait_port backend "$BPORT"

start() { # name port
	local name=$1 port=$2 dir="$TMP/$1"
	PORT[$name]=$port # before any other free_port call
	mkdir -p "$dir"; chmod 755 "$dir"
	case "$name" in
	sluice | sluice-base)
		local access='"off"'
		[ -n "$ACCESS" ] && access=$dir/access.log
		cat >"$dir/sluice.yaml" <<-EOF
			listeners:
			  - address: 127.0.0.1:$port
			    tls: {certificates: [{cert_file: $TMP/cert.pem, key_file: $TMP/key.pem}]}
			upstreams: [{id: b, targets: [{address: 127.0.0.1:$BPORT}], keepalive: {max_idle: 256}}]
			routes: [{id: all, upstream: b}]
			log: {level: warn, access: $access}
			admin: {address: "127.0.0.1:$(free_port)"}
		EOF
		"$TMP/bin/$name" run -c "$dir/sluice.yaml" >"$TMP/$name.log" 2>&1 & ;;
	nginx)
		local user="" nlog=off
		[ -n "$ACCESS" ] && nlog=$dir/access.log
		[ "$(id -u)" = 0 ] && user="user root;"
		cat >"$dir/nginx.conf" <<-EOF
			$user
			worker_processes auto;
			pid $dir/nginx.pid;
			error_log $dir/error.log warn;
			events { worker_connections 4096; }
			http {
			    access_log $nlog;
			    upstream b { server 127.0.0.1:$BPORT; keepalive 256; }
			    server {
			        listen 127.0.0.1:$port ssl;
			        ssl_certificate $TMP/cert.pem;
			        ssl_certificate_key $TMP/key.pem;
			        ssl_session_cache shared:SSL:10m;
			        ssl_protocols TLSv1.2 TLSv1.3;
			        keepalive_requests 100000;
			        location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; $NGINX_SAME }
			    }
			}
		EOF
		nginx -p "$dir/" -e stderr -c "$dir/nginx.conf" -g 'daemon off;' >"$TMP/$name.log" 2>&1 & ;;
	haproxy)
		cat >"$dir/haproxy.cfg" <<-EOF
			global
			    nbthread 2
			    maxconn 4096
			defaults
			    mode http
			    option http-keep-alive
			    http-reuse always
			    timeout connect 5s
			    timeout client 60s
			    timeout server 30s
			frontend fe
			    bind 127.0.0.1:$port ssl crt $TMP/both.pem alpn http/1.1
			    default_backend be
			backend be
			    server s1 127.0.0.1:$BPORT pool-max-conn 256
		EOF
		haproxy -db -f "$dir/haproxy.cfg" >"$TMP/$name.log" 2>&1 & ;;
	caddy)
		cat >"$dir/Caddyfile" <<-EOF
			{
			    admin off
			    auto_https off
			    default_sni localhost
			}
			https://:$port {
			    bind 127.0.0.1
			    tls $TMP/cert.pem $TMP/key.pem
			    reverse_proxy 127.0.0.1:$BPORT {
			        transport http {
			            keepalive_idle_conns 256
			            keepalive_idle_conns_per_host 256
			        }
			    }
			}
		EOF
		XDG_DATA_HOME=$dir XDG_CONFIG_HOME=$dir HOME=$dir caddy run --adapter caddyfile --config "$dir/Caddyfile" >"$TMP/$name.log" 2>&1 & ;;
	esac
	PID[$name]=$!
	STARTED+=("$!")
	PORT[$name]=$port
	wait_port "$name" "$port"
}

proxies=()
all=(sluice nginx haproxy caddy)
[ -n "$BASE" ] && all=(sluice sluice-base nginx haproxy caddy)
for p in "${all[@]}"; do
	[ -n "$ONLY" ] && [ "$p" != sluice-base ] && [[ " $ONLY " != *" $p "* ]] && continue
	if [[ $p != sluice* ]] && ! have "$p"; then log "note: $p is not installed; skipped"; continue; fi
	start "$p" "$(free_port)" && proxies+=("$p")
done
have wrk || { log "wrk is needed (apt-get install wrk)"; exit 1; }
TICK=$(getconf CLK_TCK)

# pids name: the proxy's process and its children, comma-separated (for perf stat -p).
pids() {
	local out=${PID[$1]} kid
	for kid in $(cat /proc/"${PID[$1]}"/task/*/children 2>/dev/null); do out+=",$kid"; done
	echo "$out"
}

# run proxy mode: prints "requests rps cpu_us_per_request syscalls_per_request
# backend_cpu_us_per_request" (syscalls "-" unless -syscalls in keepalive mode): the
# backend's CPU shows what the proxy's way of talking to it costs there.
run() {
	local p=$1 mode=$2 url="https://127.0.0.1:${PORT[$1]}/" before after bbefore bafter out req rps sc=-
	before=$(cpu_ticks "$p")
	bbefore=$(cpu_ticks backend)
	case "$mode" in
	keepalive)
		if [ -n "$SYSCALLS" ]; then
			out=$(perf stat -e raw_syscalls:sys_enter -x, -o "$TMP/syscalls" -p "$(pids "$p")" -- wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url" 2>&1)
		else
			out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "$url" 2>&1)
		fi
		req=$(awk '/requests in/{print $1}' <<<"$out")
		rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
		[ -n "$SYSCALLS" ] && sc=$(awk -F, -v req="$req" '/raw_syscalls/ && req > 0 {printf "%.2f", $1 / req}' "$TMP/syscalls") ;;
	resumed | full | resumed12 | full12)
		local flags="-new"
		[[ $mode == resumed* ]] && flags="$flags -resume"
		[[ $mode == *12 ]] && flags="$flags -tls12"
		# shellcheck disable=SC2086
		out=$("$TMP/bin/loadgen" -url "$url" -c 16 -d "${DURATION}s" $flags)
		req=$(cut -f1 <<<"$out"); rps=$(cut -f2 <<<"$out") ;;
	esac
	after=$(cpu_ticks "$p")
	bafter=$(cpu_ticks backend)
	awk -v r="$req" -v s="$rps" -v t=$((after - before)) -v bt=$((bafter - bbefore)) -v hz="$TICK" -v sc="$sc" \
		'BEGIN{ printf "%d\t%.0f\t%.1f\t%s\t%.1f\n", r, s, (r>0 ? t/hz*1e6/r : 0), sc, (r>0 ? bt/hz*1e6/r : 0) }'
}

results="$TMP/results.tsv"
for mode in $MODES; do
	for r in $(seq 1 "$ROUNDS"); do
		n=${#proxies[@]}
		for i in $(seq 0 $((n - 1))); do
			p=${proxies[$(((i + r) % n))]}
			line=$(run "$p" "$mode")
			printf '%s\t%s\t%s\t%s\n' "$mode" "$r" "$p" "$line" >>"$results"
			log "$(printf '%-9s round %s %-8s %s' "$mode" "$r" "$p" "$line")"
		done
	done
done

echo
echo "TLS: medians over $ROUNDS rounds x ${DURATION}s (keepalive: wrk -c$CONNS; resumed/full: loadgen -c16, a new connection per request)"
printf 'mode\tproxy\trps\trps_vs_nginx\tcpu_us_req\tcpu_vs_nginx\tsyscalls_req\tbackend_cpu_us_req\n'
for mode in $MODES; do
	nrps=$(awk -F'\t' -v m="$mode" '$1==m && $3=="nginx"{print $5}' "$results" | median)
	ncpu=$(awk -F'\t' -v m="$mode" '$1==m && $3=="nginx"{print $6}' "$results" | median)
	for p in "${proxies[@]}"; do
		rps=$(awk -F'\t' -v m="$mode" -v p="$p" '$1==m && $3==p{print $5}' "$results" | median)
		cpu=$(awk -F'\t' -v m="$mode" -v p="$p" '$1==m && $3==p{print $6}' "$results" | median)
		sc=-
		[ -n "$SYSCALLS" ] && [ "$mode" = keepalive ] && sc=$(awk -F'\t' -v m="$mode" -v p="$p" '$1==m && $3==p{print $7}' "$results" | median)
		bcpu=$(awk -F'\t' -v m="$mode" -v p="$p" '$1==m && $3==p{print $8}' "$results" | median)
		awk -v m="$mode" -v p="$p" -v r="$rps" -v c="$cpu" -v nr="${nrps:-0}" -v nc="${ncpu:-0}" -v sc="$sc" -v bc="$bcpu" \
			'BEGIN{ printf "%s\t%s\t%.0f\t%s\t%.1f\t%s\t%s\t%.1f\n", m, p, r, (nr>0? sprintf("%.2f", r/nr) : "-"), c, (nc>0? sprintf("%.2f", c/nc) : "-"), sc, bc }'
	done
done

[ -n "$BASE" ] || exit 0
echo
echo "sluice / sluice-base ($BASE) per round (same round, minutes apart at most)"
printf 'mode\tround\trps_ratio\tcpu_ratio\n'
round_ratios "$results" 5 6
