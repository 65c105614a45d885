#!/usr/bin/env bash
# bench/reuse.sh: upstream connection reuse against backends that close idle connections
# (issue #20; part of the stale suite, docs/benchmarks.md).
#
#   bash bench/reuse.sh [-runs 3] [-duration 45] [-clients 16] [-idle 1s] [-only "sluice nginx"]
#                       [-backends "go nginx node race"] [-shared] [-out DIR] [-base REV]
#
# Each backend kind closes keep-alive connections idle for T (-idle): "go" is a Go net/http
# server (IdleTimeout, bench/reusebackend), "nginx" an nginx server (keepalive_timeout), "node" a
# Node http server (keepAliveTimeout, advertised in Keep-Alive), "race" bench/stalebackend, which
# also resets requests arriving in the last 100 ms before T (the failing case). Every proxy gets
# its own backend instance, all side by side, with the stale suite's configs (upstream idle
# timeout 600 s, so a proxy only knows T from what it learns). bench/staleclient runs -clients
# sequential clients per proxy, pauses spread over 0.8-1.2 T, 50/50 GET/POST, one client
# connection per request. As in the torture suite (internal/gateway/torture_test.go), each
# client has a route and an upstream of its own (so its own pool, in every proxy), which makes
# every reuse happen at an idle age near T; -shared sends all clients through one upstream
# instead (then the pool sees -clients requests per T and reuse is easy for everyone).
#
# Reported per run, backend and proxy: requests, client 5xx + errors, duplicates (requests the
# backend processed twice), backend accepts per 1,000 requests and request-path connects per
# 1,000 (requests that waited for a connect of their own: for the peers, which never connect
# ahead of a request, every accept; for Sluice, accepts minus preconnects, from its pool view).
# Results in -out (default bench/out/reuse): reuse.tsv (one line per run, backend, proxy).
# -base REV: also run Sluice built from REV, as "sluice-base" with the same config, side by
# side (a before/after comparison in the same runs).
set -euo pipefail

RUNS=3 DURATION=45 CLIENTS=16 IDLE=1s ONLY="" BACKENDS="go nginx node race" OUTDIR="" SHARED=0 BASE=""
while [ $# -gt 0 ]; do
	case "$1" in
	-runs) RUNS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-clients) CLIENTS=$2; shift ;;
	-idle) IDLE=$2; shift ;;
	-only) ONLY=$2; shift ;;
	-backends) BACKENDS=$2; shift ;;
	-out) OUTDIR=$2; shift ;;
	-shared) SHARED=1 ;;
	-base) BASE=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "reuse.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTDIR=${OUTDIR:-$ROOT/bench/out/reuse}
mkdir -p "$OUTDIR"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init reuse
# Ports come from PORT_BASE..PORT_BASE+999 (default 27000), so that runs beside other
# benchmarks on a shared machine stay out of their way.
PORT_BASE=${PORT_BASE:-27000}
# free_port (bench/lib.sh) hands out ports from PORT_LO..PORT_LO+PORT_SPAN-1 only.
PORT_LO=$PORT_BASE PORT_SPAN=1000

log "building sluice, staleclient, stalebackend and reusebackend into $TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice ./bench/staleclient ./bench/stalebackend ./bench/reusebackend)
if [ -n "$BASE" ]; then
	log "building sluice-base from $BASE"
	mkdir -p "$TMP/base"
	(cd "$ROOT" && git archive "$BASE") | tar -x -C "$TMP/base"
	(cd "$TMP/base" && go build -o "$TMP/bin/sluice-base" ./cmd/sluice)
fi
idle_ms=$(awk -v d="$IDLE" 'BEGIN{ if (d ~ /ms$/) print d+0; else print (d+0)*1000 }')
idle_s=$(awk -v m="$idle_ms" 'BEGIN{ print m/1000 }')

# backend kind name port: starts the backend for one proxy.
backend() {
	local kind=$1 name=$2 port=$3 dir="$TMP/$2"
	mkdir -p "$dir"; chmod 755 "$dir"
	case "$kind" in
	go) "$TMP/bin/reusebackend" -addr "127.0.0.1:$port" -idle "$IDLE" >"$TMP/$name.log" 2>&1 & ;;
	node) node "$ROOT/bench/reusebackend/node.js" "$port" "$idle_ms" >"$TMP/$name.log" 2>&1 & ;;
	race) "$TMP/bin/stalebackend" -addr "127.0.0.1:$port" -idle "$IDLE" >"$TMP/$name.log" 2>&1 & ;;
	nginx)
		local user=""
		[ "$(id -u)" = 0 ] && user="user root;"
		cat >"$dir/nginx.conf" <<-EOF
			$user
			worker_processes 1;
			pid $dir/nginx.pid;
			error_log $dir/error.log warn;
			events { worker_connections 4096; }
			http {
			    log_format ids '\$http_x_request_id';
			    access_log $dir/ids.log ids;
			    keepalive_timeout ${idle_s}s;
			    keepalive_requests 1000000;
			    client_body_temp_path $dir/client_body;
			    server {
			        listen 127.0.0.1:$port;
			        location = /__status { stub_status; access_log off; }
			        location / { return 200 "$(printf 'x%.0s' $(seq 300))"; }
			    }
			}
		EOF
		nginx -p "$dir/" -e stderr -c "$dir/nginx.conf" -g 'daemon off;' >"$TMP/$name.log" 2>&1 & ;;
	esac
	PID[$name]=$!
	STARTED+=("$!")
	wait_port "$name" "$port"
}

# backend_stats kind name port: prints "accepts duplicates" of a backend.
backend_stats() {
	local kind=$1 name=$2 port=$3
	case "$kind" in
	nginx)
		local acc dup
		acc=$(curl -fsS "http://127.0.0.1:$port/__status" | awk 'NR==3{print $1}')
		dup=$(grep -v '^-$' "$TMP/$name/ids.log" | sort | uniq -d | wc -l)
		echo "$acc $dup" ;;
	*) curl -fsS "http://127.0.0.1:$port/__stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["accepts"], s["duplicates"])' ;;
	esac
}

NUP=$CLIENTS
[ "$SHARED" = 1 ] && NUP=1

# proxy name port bport: starts one proxy in front of bport (the stale suite's configs), with
# NUP upstreams: upstream u<i> serves the paths /c<i>/.
proxy() {
	local name=$1 port=$2 bport=$3 dir="$TMP/$1" i
	mkdir -p "$dir"; chmod 755 "$dir"
	case "$name" in
	sluice*)
		PORT[$name-admin]=$(free_port)
		{
			printf 'listeners: [{address: "127.0.0.1:%s"}]\nupstreams:\n' "$port"
			for i in $(seq 0 $((NUP - 1))); do
				printf '  - id: u%s\n    targets: [{address: "127.0.0.1:%s"}]\n    keepalive: {max_idle: 256, idle_timeout: 600s}\n' "$i" "$bport"
			done
			printf 'routes:\n'
			for i in $(seq 0 $((NUP - 1))); do
				printf '  - id: r%s\n    match: {path_prefix: /c%s/}\n    upstream: u%s\n' "$i" "$i" "$i"
			done
			printf 'log: {level: info, access: "off"}\nadmin: {address: "127.0.0.1:%s"}\n' "${PORT[$name-admin]}"
		} >"$dir/sluice.yaml"
		"$TMP/bin/${name%-[a-z]*-[0-9]*}" run -c "$dir/sluice.yaml" >"$TMP/$name.log" 2>&1 & ;;
	nginx*)
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
			    client_body_temp_path $dir/client_body;
			    proxy_temp_path $dir/proxy;
			    include $dir/upstreams.conf;
			    server {
			        listen 127.0.0.1:$port;
			        proxy_http_version 1.1;
			        proxy_set_header Connection "";
			        include $dir/locations.conf;
			    }
			}
		EOF
		for i in $(seq 0 $((NUP - 1))); do
			printf 'upstream u%s { server 127.0.0.1:%s; keepalive 128; keepalive_requests 1000000; keepalive_timeout 600s; }\n' "$i" "$bport"
		done >"$dir/upstreams.conf"
		for i in $(seq 0 $((NUP - 1))); do
			printf 'location /c%s/ { proxy_pass http://u%s; }\n' "$i" "$i"
		done >"$dir/locations.conf"
		nginx -p "$dir/" -e stderr -c "$dir/nginx.conf" -g 'daemon off;' >"$TMP/$name.log" 2>&1 & ;;
	haproxy*)
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
			    timeout server 600s
			frontend fe
			    bind 127.0.0.1:$port
		EOF
		for i in $(seq 0 $((NUP - 1))); do printf '    use_backend b%s if { path_beg /c%s/ }\n' "$i" "$i"; done >>"$dir/haproxy.cfg"
		for i in $(seq 0 $((NUP - 1))); do printf 'backend b%s\n    server s1 127.0.0.1:%s pool-max-conn 256\n' "$i" "$bport"; done >>"$dir/haproxy.cfg"
		haproxy -db -f "$dir/haproxy.cfg" >"$TMP/$name.log" 2>&1 & ;;
	caddy*)
		cat >"$dir/Caddyfile" <<-EOF
			{
			    admin off
			    auto_https off
			}
			http://127.0.0.1:$port {
		EOF
		for i in $(seq 0 $((NUP - 1))); do
			printf '    handle /c%s/* {\n        reverse_proxy 127.0.0.1:%s {\n            transport http {\n                keepalive_idle_conns 256\n                keepalive_idle_conns_per_host 256\n                keepalive 600s\n            }\n        }\n    }\n' "$i" "$bport"
		done >>"$dir/Caddyfile"
		echo "}" >>"$dir/Caddyfile"
		XDG_DATA_HOME=$dir XDG_CONFIG_HOME=$dir HOME=$dir caddy run --adapter caddyfile --config "$dir/Caddyfile" >"$TMP/$name.log" 2>&1 & ;;
	esac
	PID[$name]=$!
	STARTED+=("$!")
	wait_port "$name" "$port"
}

# sluice_pool name: prints "preconnects request_path_connects" summed over Sluice's pools.
sluice_pool() {
	python3 - "http://127.0.0.1:${PORT[$1-admin]}/admin/upstreams/u%d/pool" "$NUP" <<-'PY'
		import json, sys, urllib.request
		pre = pc = 0
		for i in range(int(sys.argv[2])):
		    t = json.load(urllib.request.urlopen(sys.argv[1] % i))["targets"][0]["counters"]
		    pre += t.get("preconnects", 0)
		    pc += t.get("request_path_connects", t["opened"])
		print(pre, pc)
	PY
}

proxies=()
for p in sluice ${BASE:+sluice-base} nginx haproxy caddy; do
	[ -n "$ONLY" ] && [[ " $ONLY " != *" $p "* ]] && continue
	if [[ $p != sluice* ]] && ! have "$p"; then log "note: $p is not installed; skipped"; continue; fi
	proxies+=("$p")
done
kinds=()
for k in $BACKENDS; do
	[ "$k" = nginx ] && ! have nginx && { log "note: nginx not installed; backend skipped"; continue; }
	[ "$k" = node ] && ! have node && { log "note: node not installed; backend skipped"; continue; }
	kinds+=("$k")
done

out="$OUTDIR/reuse.tsv"
printf 'run\tbackend\tproxy\trequests\tgets\tposts\tclient_5xx\tclient_errors\tduplicates\taccepts\trequest_path_connects\taccepts_per_1000\tpath_connects_per_1000\n' >"$out"
for run in $(seq 1 "$RUNS"); do
	pairs=()
	for k in "${kinds[@]}"; do
		for p in "${proxies[@]}"; do
			n="$p-$k-$run"
			PORT[be-$n]=$(free_port); PORT[$n]=$(free_port)
			backend "$k" "be-$n" "${PORT[be-$n]}"
			proxy "$n" "${PORT[$n]}" "${PORT[be-$n]}"
			pairs+=("$k $p $n")
		done
	done
	log "run $run: ${#pairs[@]} proxy/backend pairs side by side, ${DURATION}s, $CLIENTS clients each, T=$IDLE"
	cpids=()
	for pr in "${pairs[@]}"; do
		read -r k p n <<<"$pr"
		url="http://127.0.0.1:${PORT[$n]}/c%d/r"
		[ "$SHARED" = 1 ] && url="http://127.0.0.1:${PORT[$n]}/c0/r"
		"$TMP/bin/staleclient" -url "$url" -backend "" -idle "$IDLE" \
			-before "$((idle_ms / 5))ms" -after "$((idle_ms / 5))ms" -clients "$CLIENTS" -duration "${DURATION}s" -v \
			>"$TMP/$n.out" 2>"$TMP/$n.err" &
		cpids+=($!)
	done
	for c in "${cpids[@]}"; do wait "$c" || log "a client failed"; done
	for pr in "${pairs[@]}"; do
		read -r k p n <<<"$pr"
		read -r acc dup <<<"$(backend_stats "$k" "be-$n" "${PORT[be-$n]}")"
		pathc=$acc
		if [[ $p == sluice* ]]; then
			read -r pre pc <<<"$(sluice_pool "$n")"
			pathc=$pc
			cp "$TMP/$n.log" "$OUTDIR/$n.log"
		fi
		read -r reqs gets posts f5 fe <<<"$(cat "$TMP/$n.out")"
		cp "$TMP/$n.err" "$OUTDIR/$n.failures.txt"
		awk -v OFS='\t' -v run="$run" -v k="$k" -v p="$p" -v r="$reqs" -v g="$gets" -v po="$posts" -v f5="$f5" -v fe="$fe" -v d="$dup" -v a="$acc" -v pc="$pathc" \
			'BEGIN{ print run, k, p, r, g, po, f5, fe, d, a, pc, (r>0? sprintf("%.0f", a*1000/r) : "-"), (r>0? sprintf("%.0f", pc*1000/r) : "-") }' >>"$out"
		kill "${PID[$n]}" "${PID[be-$n]}" 2>/dev/null || true
	done
done

echo "Connection reuse: T=$IDLE, $CLIENTS clients per proxy, pauses 0.8-1.2 T, 50/50 GET/POST, ${DURATION}s x $RUNS runs (shared machine)"
column -t -s $'\t' "$out"
echo
echo "Per backend and proxy: accepts and request-path connects per 1,000 requests, median [min-max] over runs; failures and duplicates summed"
awk -F'\t' 'NR>1 { k=$2" "$3; a[k]=a[k]" "$12; c[k]=c[k]" "$13; f[k]+=$7+$8; d[k]+=$9; if (!(k in seen)) { seen[k]=1; order[++n]=k } }
function stat(s,   v, m, i, j, t, lo, hi, med) { m=split(substr(s,2), v, " "); for (i=1;i<=m;i++) for (j=i+1;j<=m;j++) if (v[j]+0<v[i]+0) { t=v[i]; v[i]=v[j]; v[j]=t }
	med = (m%2) ? v[(m+1)/2] : (v[m/2]+v[m/2+1])/2; return sprintf("%s [%s-%s]", med, v[1], v[m]) }
END { printf "backend\tproxy\taccepts/1000\tpath_connects/1000\tfailures\tduplicates\n"; for (i=1;i<=n;i++) { split(order[i], kp, " "); printf "%s\t%s\t%s\t%s\t%d\t%d\n", kp[1], kp[2], stat(a[order[i]]), stat(c[order[i]]), f[order[i]], d[order[i]] } }' "$out" | tee "$OUTDIR/summary.tsv" | column -t -s $'\t'
