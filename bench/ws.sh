#!/usr/bin/env bash
# bench/ws.sh: WebSocket echo through each proxy, side by side (docs/benchmarks.md).
#
#   bash bench/ws.sh [-rounds 3] [-duration 5] [-connections 32] [-size 128] [-only "sluice nginx"]
#
# One WebSocket echo backend (bench/wsload -serve) behind sluice, nginx, HAProxy and Caddy, each
# on its own loopback port (plain ws://, access logs off). bench/wsload keeps -connections
# WebSocket connections busy sending a message and waiting for its echo; the order of the
# proxies rotates each round. Reported: medians of messages/s and CPU per message (utime+stime
# of the proxy's processes) with ratios to nginx, and to direct (no proxy).
set -euo pipefail

ROUNDS=3 DURATION=5 CONNS=32 SIZE=128 ONLY=""
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-size) SIZE=$2; shift ;;
	-only) ONLY=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "ws.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init ws

log "building sluice and wsload into $TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice ./bench/wsload)

BPORT=$(free_port); PORT[direct]=$BPORT
"$TMP/bin/wsload" -serve "127.0.0.1:$BPORT" >"$TMP/backend.log" 2>&1 &
STARTED+=("$!"); PID[direct]=$!
wait_port backend "$BPORT"

start() { # name port
	local name=$1 port=$2 dir="$TMP/$1"
	PORT[$name]=$port
	mkdir -p "$dir"; chmod 755 "$dir"
	case "$name" in
	sluice)
		cat >"$dir/sluice.yaml" <<-EOF
			listeners: [{address: "127.0.0.1:$port"}]
			upstreams: [{id: b, targets: [{address: "127.0.0.1:$BPORT"}]}]
			routes: [{id: all, upstream: b}]
			log: {level: warn, access: "off"}
			admin: {address: "127.0.0.1:$(free_port)"}
		EOF
		"$TMP/bin/sluice" run -c "$dir/sluice.yaml" >"$TMP/$name.log" 2>&1 & ;;
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
			    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
			    server {
			        listen 127.0.0.1:$port;
			        location / {
			            proxy_pass http://127.0.0.1:$BPORT;
			            proxy_http_version 1.1;
			            proxy_set_header Upgrade \$http_upgrade;
			            proxy_set_header Connection \$connection_upgrade;
			            proxy_read_timeout 1h;
			        }
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
			    timeout connect 5s
			    timeout client 60s
			    timeout server 60s
			    timeout tunnel 1h
			frontend fe
			    bind 127.0.0.1:$port
			    default_backend be
			backend be
			    server s1 127.0.0.1:$BPORT
		EOF
		haproxy -db -f "$dir/haproxy.cfg" >"$TMP/$name.log" 2>&1 & ;;
	caddy)
		cat >"$dir/Caddyfile" <<-EOF
			{
			    admin off
			    auto_https off
			}
			http://127.0.0.1:$port {
			    reverse_proxy 127.0.0.1:$BPORT
			}
		EOF
		XDG_DATA_HOME=$dir XDG_CONFIG_HOME=$dir HOME=$dir caddy run --adapter caddyfile --config "$dir/Caddyfile" >"$TMP/$name.log" 2>&1 & ;;
	esac
	PID[$name]=$!
	STARTED+=("$!")
	wait_port "$name" "$port"
}

proxies=(direct)
for p in sluice nginx haproxy caddy; do
	[ -n "$ONLY" ] && [[ " $ONLY " != *" $p "* ]] && continue
	if [ "$p" != sluice ] && ! have "$p"; then log "note: $p is not installed; skipped"; continue; fi
	start "$p" "$(free_port)" && proxies+=("$p")
done
TICK=$(getconf CLK_TCK)

results="$TMP/results.tsv"
for r in $(seq 1 "$ROUNDS"); do
	n=${#proxies[@]}
	for i in $(seq 0 $((n - 1))); do
		p=${proxies[$(((i + r) % n))]}
		before=$(cpu_ticks "$p")
		out=$("$TMP/bin/wsload" -url "ws://127.0.0.1:${PORT[$p]}/ws" -c "$CONNS" -d "${DURATION}s" -size "$SIZE")
		after=$(cpu_ticks "$p")
		line=$(awk -F'\t' -v t=$((after - before)) -v hz="$TICK" '{ printf "%d\t%.0f\t%s\t%s\t%d\t%.1f\n", $1, $2, $3, $4, $5, ($1>0 ? t/hz*1e6/$1 : 0) }' <<<"$out")
		printf '%s\t%s\t%s\n' "$r" "$p" "$line" >>"$results"
		log "$(printf 'round %s %-8s %s' "$r" "$p" "$line")"
	done
done

echo
echo "WebSocket echo: medians over $ROUNDS rounds x ${DURATION}s, $CONNS connections, $SIZE-byte messages (CPU: the proxy's; for direct, the backend's)"
printf 'proxy\tmsgs_per_s\tx_nginx\tx_direct\tp99_ms\tcpu_us_msg\tcpu_x_nginx\n'
col() { awk -F'\t' -v p="$1" -v c="$2" '$2==p{print $c}' "$results" | median; }
nm=$(col nginx 4); nc=$(col nginx 8); dm=$(col direct 4)
for p in "${proxies[@]}"; do
	awk -v p="$p" -v m="$(col "$p" 4)" -v p99="$(col "$p" 6)" -v c="$(col "$p" 8)" -v nm="${nm:-0}" -v nc="${nc:-0}" -v dm="${dm:-0}" \
		'BEGIN{ printf "%s\t%.0f\t%s\t%s\t%s\t%.1f\t%s\n", p, m, (nm>0? sprintf("%.2f", m/nm) : "-"), (dm>0? sprintf("%.2f", m/dm) : "-"), p99, c, (nc>0 && p!="direct"? sprintf("%.2f", c/nc) : "-") }'
done
