#!/usr/bin/env bash
# bench/run.sh: Sluice's comparison suite (docs/benchmarks.md).
#
#   bash bench/run.sh [-rounds 3] [-duration 10] [-connections 64] [-size 300] [-out DIR]
#                     [-smoke] [-stale] [-no-stale] [-no-reuse] [-no-install] [-loadgen] [-docs]
#                     [-stale-duration 60] [-stale-idle 1s] [-stale-clients 1] [-rev REV]
#                     [-base REV] [-only "sluice sluice-base nginx"] [-gouring "-recv-ring ..."]
#
# Throughput: one plain Go backend (bench/backend, 300-byte bodies, or -size) behind each proxy (and
# behind sluice-full: 20 routes, access log to a file, metrics; and sluice-plugins: CORS, key-auth
# and a local rate limit on its route; both compared with plain sluice),
# each proxy on its own loopback port with upstream keep-alive on and access logs off; wrk
# (-t1 -c<connections> --latency, or bench/loadgen when wrk is missing) runs against
# direct, sluice, nginx, haproxy, caddy, goproxy and the reference points goepoll, goepoll-coro
# (a feature-free Go epoll proxy) and gouring (the same on io_uring; not in -smoke) in turn,
# the order rotated each round.
# Reported: medians over rounds of requests/s, p50 and p99, each with its ratio to nginx and
# to direct, CPU per request (utime+stime of the proxy's processes over each run divided by
# its requests; for direct, the backend's), and peak RSS (VmHWM summed over the proxy's
# processes, read after the runs).
#
# Stale connections (incidents in /work/shared/INCIDENTS.md): bench/stalebackend closes
# connections idle for T and resets a request arriving after T-eps; each proxy is configured
# with the incident's misconfiguration (upstream idle timeout 600 s) and bench/staleclient
# sends a GET/POST mix at intervals straddling T. Reported per proxy: client-visible 5xx and
# requests the backend processed twice. The stale scenario then runs bench/reuse.sh once (-runs 1,
# -stale-duration seconds; its table lands in -out/reuse): connection reuse against real Go,
# nginx and Node backends closing idle connections at 1 s, and a racing one (issue #20). -no-reuse
# skips it.
#
# -smoke: 1 round of 2 s, direct, sluice and whichever peers are installed, no apt, no stale
# scenario, no charts; exits non-zero if sluice served nothing or answered non-2xx.
# -stale: only the stale scenario. -docs: also copy the charts to docs/benchmarks/.
# -rev REV: build sluice from `git archive REV` instead of the working tree (read-only).
# -base REV: also run sluice built from REV, as "sluice-base" with plain sluice's config, in
# the same rounds: a change's before and after, side by side.
# -only LIST: run only these proxies (direct always runs) in the throughput rounds.
# -syscalls: also count each proxy's system calls per request (perf stat on the
# raw_syscalls:sys_enter tracepoint, attached to the proxy's processes for each round; needs
# perf and tracefs): column syscalls_req.
# -gouring FLAGS: gouring's ring options (bench/gouring -h; default: $GOURING_FLAGS below).
# Ports: PORT_LO and PORT_SPAN in the environment narrow the range ports are taken from
# (default 20000-31999), for runs beside other benchmarks.
# Files in -out (default bench/out): results.tsv (raw rounds), summary.tsv, rss.tsv, stale.tsv, env.txt,
# report.md, *.png. Only processes started here are stopped (trap EXIT). Ports come from
# PORT_LO..PORT_LO+PORT_SPAN-1 (environment; default 20000-31999).
set -euo pipefail

ROUNDS=3 DURATION=10 CONNS=64 SIZE=300 OUT="" SMOKE=0 DO_TPUT=1 DO_STALE=1 INSTALL=1 FORCE_LOADGEN=0
DO_REUSE=1 DOCS=0 STALE_DURATION=60 STALE_IDLE=1s STALE_CLIENTS=1 REV="" BASE="" ONLY=""
GOURING_FLAGS="-ring-peek -setup coop" SYSCALLS=0
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-size) SIZE=$2; shift ;;
	-out) OUT=$2; shift ;;
	-smoke) SMOKE=1 ;;
	-stale) DO_TPUT=0; DO_STALE=1 ;;
	-no-stale) DO_STALE=0 ;;
	-no-reuse) DO_REUSE=0 ;;
	-no-install) INSTALL=0 ;;
	-loadgen) FORCE_LOADGEN=1 ;;
	-docs) DOCS=1 ;;
	-rev) REV=$2; shift ;;
	-base) BASE=$2; shift ;;
	-only) ONLY=$2; shift ;;
	-gouring) GOURING_FLAGS=$2; shift ;;
	-syscalls) SYSCALLS=1 ;;
	-stale-duration) STALE_DURATION=$2; shift ;;
	-stale-idle) STALE_IDLE=$2; shift ;;
	-stale-clients) STALE_CLIENTS=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "run.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done
if [ "$SMOKE" = 1 ]; then
	ROUNDS=1 DURATION=2 INSTALL=0 DO_TPUT=1 DO_STALE=0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# free_port comes from bench/lib.sh (ports in PORT_LO..PORT_LO+PORT_SPAN-1, default
# 20000-31999, below the ephemeral range; a run beside others narrows it, e.g. PORT_LO=22000
# PORT_SPAN=1000). The helpers defined below replace lib.sh's of the same name.
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
chmod 755 "$TMP"
OUT=${OUT:-$ROOT/bench/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
declare -A PID=() PORT=()
STARTED=()

log() { printf '%s\n' "$*" >&2; }

cleanup() {
	local p
	for p in "${STARTED[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${STARTED[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

have() { command -v "$1" >/dev/null 2>&1; }

install_peers() {
	local missing=()
	have nginx || missing+=(nginx)
	have haproxy || missing+=(haproxy)
	have caddy || missing+=(caddy)
	have wrk || missing+=(wrk)
	have gnuplot || missing+=(gnuplot-nox)
	[ ${#missing[@]} -eq 0 ] && return
	local sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	log "installing from Debian: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >&2 ||
		log "apt-get failed; continuing with what is installed"
	# The packages start system services on port 80 etc.; the suite does not need them.
	for s in nginx haproxy caddy; do
		if have systemctl && systemctl is-active --quiet "$s" 2>/dev/null; then
			log "note: the $s system service is running (not started by this script; left alone)"
		fi
	done
}

wait_port() { # name port
	local i
	for i in $(seq 1 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
			return 0
		fi
		kill -0 "${PID[$1]}" 2>/dev/null || break
		sleep 0.05
	done
	log "$1 did not come up on port $2; its log:"
	cat "$TMP/run/$1.log" >&2 || true
	return 1
}

build() {
	log "building sluice and the bench programs into $TMP/bin"
	mkdir -p "$TMP/bin" "$TMP/run"
	(cd "$ROOT" && go build -o "$TMP/bin/" ./bench/backend ./bench/goproxy ./bench/goepoll ./bench/gouring \
		./bench/loadgen ./bench/stalebackend ./bench/staleclient)
	local src=$ROOT
	if [ -n "$REV" ]; then
		src=$TMP/src
		mkdir -p "$src"
		(cd "$ROOT" && git archive "$REV") | tar -x -C "$src"
	fi
	(cd "$src" && go build -o "$TMP/bin/sluice" ./cmd/sluice)
	if [ -n "$BASE" ]; then
		mkdir -p "$TMP/base"
		(cd "$ROOT" && git archive "$BASE") | tar -x -C "$TMP/base"
		(cd "$TMP/base" && go build -o "$TMP/bin/sluice-base" ./cmd/sluice)
	fi
}

# write_config name port backend_port mode(tput|stale) prints the config file path.
write_config() {
	local name=$1 port=$2 bport=$3 mode=$4 dir="$TMP/run/$1"
	mkdir -p "$dir"
	chmod 755 "$dir"
	case "$name" in
	sluice | sluice-base)
		local ka='{max_idle: 256}'
		[ "$mode" = stale ] && ka='{max_idle: 256, idle_timeout: 600s}'
		cat >"$dir/sluice.yaml" <<-EOF
			listeners:
			  - address: 127.0.0.1:$port
			upstreams:
			  - id: backend
			    targets:
			      - address: 127.0.0.1:$bport
			    keepalive: $ka
			routes:
			  - id: all
			    upstream: backend
			log: {level: warn, access: "off"}
			# the admin listener (metrics) stays on as by default, on a port of its own
			admin: {address: "127.0.0.1:$(free_port)"}
		EOF
		echo "$dir/sluice.yaml" ;;
	sluice-full)
		# The same gateway with what a production config has: 20 routes (host, method, header
		# and prefix matches; the catch-all is tried last), the JSON access log written to a
		# file, and metrics on (the admin listener is on in both variants).
		{
			printf 'listeners:\n  - address: 127.0.0.1:%s\n' "$port"
			printf 'upstreams:\n  - id: backend\n    targets:\n      - address: 127.0.0.1:%s\n' "$bport"
			printf '    keepalive: {max_idle: 256}\n'
			printf 'routes:\n'
			local i
			for i in $(seq 1 19); do
				printf '  - id: r%s\n    match: {hosts: [svc%s.example.com], path_prefix: /api/v%s/, methods: [GET, POST], headers: [{name: X-Tenant, exact: t%s}]}\n    upstream: backend\n' "$i" "$i" "$i" "$i"
			done
			printf '  - id: all\n    upstream: backend\n'
			printf 'log: {level: warn, access: "%s"}\n' "$dir/access.log"
			printf 'admin: {address: "127.0.0.1:%s"}\n' "$(free_port)"
		} >"$dir/sluice.yaml"
		echo "$dir/sluice.yaml" ;;
	sluice-plugins)
		# Plain sluice with the everyday plugin chain on its one route: CORS, key-auth (the
		# key in the query: the load generators send no custom header) and a local rate limit
		# per consumer set high enough never to refuse (the decision is still made).
		cat >"$dir/sluice.yaml" <<-EOF
			listeners:
			  - address: 127.0.0.1:$port
			upstreams:
			  - id: backend
			    targets:
			      - address: 127.0.0.1:$bport
			    keepalive: {max_idle: 256}
			consumers:
			  - name: bench
			    credentials: {key-auth: {keys: ["$BENCH_KEY"]}}
			routes:
			  - id: all
			    upstream: backend
			    plugins:
			      - name: cors
			        config: {allow_origins: ["https://app.example.com"]}
			      - name: key-auth
			        config: {query: api_key}
			      - name: rate-limit
			        config: {key: [consumer], limit: 1000000000, window: 1s}
			log: {level: warn, access: "off"}
			admin: {address: "127.0.0.1:$(free_port)"}
		EOF
		echo "$dir/sluice.yaml" ;;
	nginx)
		local user="" ka_to=""
		[ "$(id -u)" = 0 ] && user="user root;"
		[ "$mode" = stale ] && ka_to="keepalive_timeout 600s;"
		cat >"$dir/nginx.conf" <<-EOF
			$user
			worker_processes auto;
			pid $dir/nginx.pid;
			error_log $dir/error.log warn;
			events { worker_connections 4096; }
			http {
			    access_log off;
			    keepalive_requests 1000000;
			    client_body_temp_path $dir/client_body;
			    proxy_temp_path $dir/proxy;
			    fastcgi_temp_path $dir/fastcgi;
			    uwsgi_temp_path $dir/uwsgi;
			    scgi_temp_path $dir/scgi;
			    upstream backend {
			        server 127.0.0.1:$bport;
			        keepalive 128;
			        keepalive_requests 1000000;
			        $ka_to
			    }
			    server {
			        listen 127.0.0.1:$port;
			        location / {
			            proxy_pass http://backend;
			            proxy_http_version 1.1;
			            proxy_set_header Connection "";
			        }
			    }
			}
		EOF
		echo "$dir/nginx.conf" ;;
	haproxy)
		local tserver=30s
		[ "$mode" = stale ] && tserver=600s
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
			    timeout server $tserver
			frontend fe
			    bind 127.0.0.1:$port
			    default_backend be
			backend be
			    server s1 127.0.0.1:$bport pool-max-conn 256
		EOF
		echo "$dir/haproxy.cfg" ;;
	caddy)
		local ka=""
		[ "$mode" = stale ] && ka="keepalive 600s"
		cat >"$dir/Caddyfile" <<-EOF
			{
			    admin off
			    auto_https off
			}
			http://127.0.0.1:$port {
			    reverse_proxy 127.0.0.1:$bport {
			        transport http {
			            keepalive_idle_conns 256
			            keepalive_idle_conns_per_host 256
			            $ka
			        }
			    }
			}
		EOF
		echo "$dir/Caddyfile" ;;
	esac
}

# start name port backend_port mode: starts one process in the background, records its pid.
start() {
	local name=$1 port=$2 bport=$3 mode=$4 cfg="" logf="$TMP/run/$1.log"
	[ "$name" = direct ] || [ "$name" = goproxy ] || [[ "$name" = goepoll* ]] || [ "$name" = gouring ] || cfg=$(write_config "$name" "$port" "$bport" "$mode")
	case "$name" in
	backend) "$TMP/bin/backend" -addr "127.0.0.1:$port" -size "$SIZE" >"$logf" 2>&1 & ;;
	stalebackend-*) "$TMP/bin/stalebackend" -addr "127.0.0.1:$port" -idle "$STALE_IDLE" >"$logf" 2>&1 & ;;
	sluice | sluice-full | sluice-plugins) "$TMP/bin/sluice" run -c "$cfg" >"$logf" 2>&1 & ;;
	sluice-base) "$TMP/bin/sluice-base" run -c "$cfg" >"$logf" 2>&1 & ;;
	nginx) nginx -p "$TMP/run/nginx/" -e stderr -c "$cfg" -g 'daemon off;' >"$logf" 2>&1 & ;;
	haproxy) haproxy -db -f "$cfg" >"$logf" 2>&1 & ;;
	caddy) XDG_DATA_HOME=$TMP/run/caddy XDG_CONFIG_HOME=$TMP/run/caddy HOME=$TMP/run/caddy \
		caddy run --adapter caddyfile --config "$cfg" >"$logf" 2>&1 & ;;
	goproxy)
		local it=0
		[ "$mode" = stale ] && it=600s
		"$TMP/bin/goproxy" -addr "127.0.0.1:$port" -upstream "http://127.0.0.1:$bport" \
			-idle 256 -idle-timeout "$it" >"$logf" 2>&1 & ;;
	goepoll | goepoll-coro)
		local m=loop
		[ "$name" = goepoll-coro ] && m=coro
		"$TMP/bin/goepoll" -mode $m -addr "127.0.0.1:$port" -upstream "127.0.0.1:$bport" >"$logf" 2>&1 & ;;
	gouring)
		# shellcheck disable=SC2086 # GOURING_FLAGS is a list of flags
		"$TMP/bin/gouring" $GOURING_FLAGS -addr "127.0.0.1:$port" -upstream "127.0.0.1:$bport" >"$logf" 2>&1 & ;;
	*) log "start: unknown $name"; return 1 ;;
	esac
	PID[$name]=$!
	PORT[$name]=$port
	STARTED+=("$!")
	wait_port "$name" "$port"
}

# stop name: stops one process this script started.
stop() {
	local p=${PID[$1]:-}
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	unset "PID[$1]"
}

peers_available() { # prints the proxies that can run here
	local p out="sluice sluice-full sluice-plugins"
	[ -z "$BASE" ] || out+=" sluice-base"
	for p in nginx haproxy caddy; do
		if have "$p"; then out+=" $p"; else log "note: $p is not installed; skipped"; fi
	done
	echo "$out goproxy"
}

# to_ms converts wrk's "530.00us" / "1.20ms" / "1.01s" to milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN{
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v/1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v*60000 }
		else { sub(/s$/, "", v); printf "%.3f", v*1000 } }'
}

# load url seconds [prefix...]: prints "requests rps p50_ms p99_ms non2xx errors"
# (tab-separated); the load generator runs under prefix (a counter) when given.
load() {
	local url=$1 secs=$2
	shift 2
	if [ "$LOADER" = wrk ]; then
		local o
		o=$("$@" wrk -t1 -c"$CONNS" -d"${secs}s" --latency "$url" 2>&1) || { log "$o"; echo -e "0\t0\t0\t0\t0\t1"; return; }
		local reqs rps p50 p99 non2xx errs
		reqs=$(awk '/requests in/{print $1}' <<<"$o")
		rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$o")
		p50=$(to_ms "$(awk '$1=="50%"{print $2}' <<<"$o")")
		p99=$(to_ms "$(awk '$1=="99%"{print $2}' <<<"$o")")
		non2xx=$(awk '/Non-2xx or 3xx responses:/{print $5}' <<<"$o")
		errs=$(awk -F'[ ,]+' '/Socket errors:/{print $5+$7+$9+$11}' <<<"$o")
		echo -e "${reqs:-0}\t${rps:-0}\t$p50\t$p99\t${non2xx:-0}\t${errs:-0}"
	else
		"$@" "$TMP/bin/loadgen" -url "$url" -c "$CONNS" -d "${secs}s"
	fi
}

# proc_sum name file awkprog prints the sum over the proxy's recorded pid and its children
# (nginx's workers) of what awkprog prints from /proc/PID/file.
proc_sum() {
	local p=${PID[$1]:-} total=0 k kid
	[ -n "$p" ] || { echo 0; return; }
	local pids=("$p")
	for kid in $(cat /proc/"$p"/task/*/children 2>/dev/null); do pids+=("$kid"); done
	for k in "${pids[@]}"; do
		total=$((total + $(awk "$3" /proc/"$k"/"$2" 2>/dev/null || echo 0)))
	done
	echo "$total"
}

# pids name prints the proxy's recorded pid and its children's (nginx's workers), comma-separated.
pids() {
	local p=${PID[$1]} out=${PID[$1]} kid
	for kid in $(cat /proc/"$p"/task/*/children 2>/dev/null); do out+=",$kid"; done
	echo "$out"
}

# counting name: the command prefix that counts the system calls of the proxy's processes
# (every thread) into $TMP/run/syscalls while the load generator runs (-syscalls).
counting() {
	[ "$SYSCALLS" = 1 ] && echo "perf stat -e raw_syscalls:sys_enter -x, -o $TMP/run/syscalls -p $(pids "$1") --"
}

# rss name prints the peak RSS in KiB of the process and its children.
rss() { proc_sum "$1" status '/^VmHWM:/{print $2}'; }

# cpu_ticks name: CPU clock ticks (utime + stime) used so far by the proxy's processes (every
# thread is in the process's stat).
cpu_ticks() { proc_sum "$1" stat '{print $14 + $15}'; }

median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) {print 0; exit} if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

write_env() {
	{
		echo "date	$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "nproc	$(nproc)"
		echo "cpu	$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
		echo "kernel	$(uname -r)"
		echo "memory	$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
		echo "go	$(go version | awk '{print $3}')"
		echo "sluice	$("$TMP/bin/sluice" version 2>&1 | head -1) (built from ${REV:-the working tree at} $(cd "$ROOT" && git rev-parse --short "${REV:-HEAD}" 2>/dev/null || echo unknown))"
		[ -z "$BASE" ] || echo "sluice-base	built from $(cd "$ROOT" && git rev-parse --short "$BASE")"
		have nginx && echo "nginx	$(nginx -v 2>&1 | sed 's/.*version: //')"
		have haproxy && echo "haproxy	$(haproxy -v 2>&1 | head -1 | awk '{print $3}')"
		have caddy && echo "caddy	$(caddy version 2>&1 | head -1)"
		echo "goproxy	net/http + httputil.ReverseProxy ($(go version | awk '{print $3}'))"
		[ -z "$(references)" ] || echo "goepoll	bench/goepoll: feature-free Go epoll proxy, a reference point (-mode loop; goepoll-coro: -mode coro)"
		[ -z "$(references)" ] || echo "gouring	bench/gouring: goepoll on io_uring, a reference point ($GOURING_FLAGS)"
		if [ "$LOADER" = wrk ]; then echo "load	$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}') -t1 -c$CONNS --latency"; else echo "load	bench/loadgen -c $CONNS"; fi
		have gnuplot && echo "gnuplot	$(gnuplot --version)"
		echo "rounds	$ROUNDS x ${DURATION}s, connections $CONNS, response body $SIZE bytes"
	} >"$OUT/env.txt"
}

# references prints the reference points of the throughput runs that are not proxies a user
# would deploy: bench/goepoll, the least a Go proxy can do per request (event loop, and
# sequential code as coroutines on an event loop), and bench/gouring, the same on io_uring
# rings. Not in the smoke run or the stale scenario. They hold a whole response in a 64 KiB
# buffer: not run for larger bodies.
references() { [ "$SMOKE" = 1 ] || [ "$SIZE" -gt 32768 ] || echo "goepoll goepoll-coro gouring"; }

throughput() {
	local proxies="direct $(peers_available) $(references)" p bport r i
	if [ -n "$ONLY" ]; then
		local keep="direct" q
		for q in $proxies; do
			[[ " $ONLY " == *" $q "* ]] && keep+=" $q"
		done
		proxies=$keep
	fi
	read -ra list <<<"$proxies"
	bport=$(free_port); PORT[backend]=$bport
	start backend "$bport" 0 tput
	PID[direct]=${PID[backend]}
	PORT[direct]=$bport
	local ok=(direct)
	for p in "${list[@]}"; do
		[ "$p" = direct ] && continue
		if start "$p" "$(free_port)" "$bport" tput; then
			ok+=("$p")
		elif [ "$p" = sluice ]; then
			log "sluice did not start"; exit 1
		else
			log "note: $p did not start; skipped"; stop "$p"
		fi
	done
	list=("${ok[@]}")
	if [ "$SMOKE" = 0 ]; then
		log "warm-up: 1s each"
		for p in "${list[@]}"; do load "http://127.0.0.1:${PORT[$p]}$(bench_path "$p")" 1 >/dev/null; done
	fi
	printf 'round\tproxy\trequests\trps\tp50_ms\tp99_ms\tnon2xx\terrors\tcpu_us_req\tsyscalls_req\n' >"$OUT/results.tsv"
	local n=${#list[@]}
	for r in $(seq 1 "$ROUNDS"); do
		for i in $(seq 0 $((n - 1))); do
			p=${list[$(((i + r - 1) % n))]}
			local row t0 t1 cpu sc=-
			t0=$(cpu_ticks "$p")
			# shellcheck disable=SC2046 # counting prints a command prefix (or nothing)
			row=$(load "http://127.0.0.1:${PORT[$p]}$(bench_path "$p")" "$DURATION" $(counting "$p"))
			t1=$(cpu_ticks "$p")
			if [ "$SYSCALLS" = 1 ]; then
				sc=$(awk -F, -v req="$(cut -f1 <<<"$row")" '/raw_syscalls/ && req > 0 {printf "%.2f", $1 / req}' "$TMP/run/syscalls")
			fi
			# The process's CPU per request over the run (direct: the backend's), in us.
			cpu=$(awk -F'\t' -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($1 > 0 ? d * 1e6 / hz / $1 : 0)}' <<<"$row")
			printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$p" "$row" "$cpu" "${sc:--}" >>"$OUT/results.tsv"
			log "round $r $(printf '%-11s' "$p") $(awk -F'\t' -v cpu="$cpu" -v sc="${sc:--}" '{printf "%10.0f req/s  p50 %.3f ms  p99 %.3f ms  cpu %s us/req  syscalls %s/req  non2xx %d  errors %d", $2, $3, $4, cpu, sc, $5, $6}' <<<"$row")"
		done
	done
	printf 'proxy\trss_kib\n' >"$OUT/rss.tsv"
	for p in "${list[@]}"; do
		printf '%s\t%s\n' "$p" "$(rss "$p")" >>"$OUT/rss.tsv"
	done
	for p in "${list[@]}"; do [ "$p" = direct ] || stop "$p"; done
	stop backend
	summarize "${list[@]}"
}

summarize() {
	local p
	printf 'proxy\trps\tp50_ms\tp99_ms\trss_mib\trps_vs_nginx\trps_vs_direct\tp50_vs_nginx\tp99_vs_nginx\trss_vs_nginx\trequests\tnon2xx\terrors\tcpu_us_req\tcpu_vs_nginx\tsyscalls_req\n' >"$OUT/summary.tsv"
	declare -A RPS P50 P99 RSS REQ NON ERR CPU SC
	for p in "$@"; do
		RPS[$p]=$(awk -F'\t' -v p="$p" '$2==p{print $4}' "$OUT/results.tsv" | median)
		P50[$p]=$(awk -F'\t' -v p="$p" '$2==p{print $5}' "$OUT/results.tsv" | median)
		P99[$p]=$(awk -F'\t' -v p="$p" '$2==p{print $6}' "$OUT/results.tsv" | median)
		REQ[$p]=$(awk -F'\t' -v p="$p" '$2==p{s+=$3} END{print s+0}' "$OUT/results.tsv")
		NON[$p]=$(awk -F'\t' -v p="$p" '$2==p{s+=$7} END{print s+0}' "$OUT/results.tsv")
		ERR[$p]=$(awk -F'\t' -v p="$p" '$2==p{s+=$8} END{print s+0}' "$OUT/results.tsv")
		RSS[$p]=$(awk -F'\t' -v p="$p" '$1==p{printf "%.1f", $2/1024}' "$OUT/rss.tsv")
		CPU[$p]=$(awk -F'\t' -v p="$p" '$2==p{print $9}' "$OUT/results.tsv" | median)
		SC[$p]=$(awk -F'\t' -v p="$p" '$2==p && $10!="-"{print $10}' "$OUT/results.tsv" | median)
	done
	local ng=${RPS[nginx]:-0} ng50=${P50[nginx]:-0} ng99=${P99[nginx]:-0} ngr=${RSS[nginx]:-0} d=${RPS[direct]} ngc=${CPU[nginx]:-0}
	for p in "$@"; do
		awk -v p="$p" -v rps="${RPS[$p]}" -v p50="${P50[$p]}" -v p99="${P99[$p]}" -v rss="${RSS[$p]}" \
			-v ng="$ng" -v ng50="$ng50" -v ng99="$ng99" -v ngr="$ngr" -v d="$d" \
			-v req="${REQ[$p]}" -v non="${NON[$p]}" -v err="${ERR[$p]}" -v cpu="${CPU[$p]}" -v ngc="$ngc" -v sc="${SC[$p]}" \
			'function r(a,b){return b>0 ? sprintf("%.2f", a/b) : "-"}
			BEGIN{ printf "%s\t%.0f\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.1f\t%s\t%s\n", p, rps, p50, p99,
				(p=="direct" ? "-" : rss), r(rps,ng), r(rps,d), r(p50,ng50), r(p99,ng99),
				(p=="direct" ? "-" : r(rss,ngr)), req, non, err, cpu, (p=="direct" ? "-" : r(cpu,ngc)), (sc > 0 ? sc : "-") }' >>"$OUT/summary.tsv"
	done
	echo
	echo "Throughput: medians over $ROUNDS rounds x ${DURATION}s, $CONNS connections, $SIZE-byte bodies, $LOADER (ratios: x nginx, x direct)"
	column -t -s $'\t' "$OUT/summary.tsv"
	full_vs_plain | tee "$OUT/full.txt"
	plugins_vs_plain | tee -a "$OUT/full.txt"
}

# BENCH_KEY is sluice-plugins' API key (its key-auth answers 401 without it, before any
# upstream); bench_query is the query a proxy's requests carry, bench_path the path its rounds
# request.
BENCH_KEY=bench-key-0123456789abcdef
bench_query() { if [ "$1" = sluice-plugins ]; then echo "?api_key=$BENCH_KEY"; fi; }
bench_path() { echo "/$(bench_query "$1")"; }

# plugins_vs_plain prints sluice-plugins (CORS + key-auth + local rate limit) against plain
# sluice.
plugins_vs_plain() {
	awk -F'\t' '$1=="sluice"{r=$2; p=$4} $1=="sluice-plugins"{fr=$2; fp=$4}
		END{ if (r>0 && fr>0) printf "sluice-plugins (cors + key-auth + local rate-limit) vs sluice: req/s x%.2f, p99 x%.2f\n", fr/r, fp/p }' "$OUT/summary.tsv"
}

# full_vs_plain prints sluice-full (20 routes, access log, metrics) against plain sluice.
full_vs_plain() {
	awk -F'\t' '$1=="sluice"{r=$2; p=$4} $1=="sluice-full"{fr=$2; fp=$4}
		END{ if (r>0 && fr>0) printf "sluice-full (20 routes, access log to a file, metrics) vs sluice: req/s x%.2f, p99 x%.2f\n", fr/r, fp/p }' "$OUT/summary.tsv"
}

stale() {
	local p list=() bport port
	read -ra list <<<"$(peers_available)"
	local pids=()
	printf 'proxy\trequests\tgets\tposts\tclient_5xx\tclient_errors\tbackend_processed\tbackend_duplicates\tbackend_dropped\tbackend_idle_closes\n' >"$OUT/stale.tsv"
	for p in "${list[@]}"; do
		bport=$(free_port); PORT[stalebackend-$p]=$bport
		start "stalebackend-$p" "$bport" 0 stale
		port=$(free_port)
		start "$p" "$port" "$bport" stale
	done
	log "stale scenario: backend idle timeout $STALE_IDLE, ${STALE_DURATION}s, $STALE_CLIENTS sequential client(s) per proxy, all proxies side by side"
	for p in "${list[@]}"; do
		"$TMP/bin/staleclient" -url "http://127.0.0.1:${PORT[$p]}/stale$(bench_query "$p")" -backend "127.0.0.1:${PORT[stalebackend-$p]}" \
			-idle "$STALE_IDLE" -clients "$STALE_CLIENTS" -duration "${STALE_DURATION}s" -v \
			>"$TMP/run/stale-$p.out" 2>"$TMP/run/stale-$p.err" &
		pids+=("$!")
		STARTED+=("$!")
	done
	for p in "${pids[@]}"; do wait "$p" || log "a stale client failed"; done
	for p in "${list[@]}"; do
		printf '%s\t%s\n' "$p" "$(cat "$TMP/run/stale-$p.out")" >>"$OUT/stale.tsv"
		cp "$TMP/run/stale-$p.err" "$OUT/stale-$p.failures.txt"
		stop "$p"
		stop "stalebackend-$p"
	done
	echo
	echo "Stale connections: backend idle timeout $STALE_IDLE, proxies' upstream idle timeout 600s"
	column -t -s $'\t' "$OUT/stale.tsv"
}

charts() {
	have gnuplot || { log "gnuplot not installed: no charts"; return 0; }
	local common="set terminal pngcairo size 820,420 font 'sans,10'; set style fill solid 0.8 border -1; set boxwidth 0.7; set grid ytics; set key top left; set yrange [0:*]; set datafile separator '\t'"
	if [ -s "$OUT/summary.tsv" ]; then
		gnuplot -e "$common; set output '$OUT/throughput.png'; set title 'requests/s (median of $ROUNDS x ${DURATION}s, $CONNS connections; label: x nginx)'; set ylabel 'requests/s'; set offsets 0,0,graph 0.1,0; plot '$OUT/summary.tsv' every ::1 using 0:2:xtic(1) with boxes lc rgb '#3070b0' notitle, '' every ::1 using 0:2:6 with labels offset 0,0.8 notitle"
		gnuplot -e "$common; set output '$OUT/latency.png'; set title 'latency (median of rounds)'; set ylabel 'ms'; set style data histograms; set style histogram clustered gap 1; plot '$OUT/summary.tsv' every ::1 using 3:xtic(1) title 'p50' lc rgb '#3070b0', '' every ::1 using 4 title 'p99' lc rgb '#d06030'"
		gnuplot -e "$common; set output '$OUT/rss.png'; set title 'peak RSS after the runs (VmHWM, all processes of the proxy)'; set ylabel 'MiB'; plot '$OUT/summary.tsv' every ::2 using 0:5:xtic(1) with boxes lc rgb '#50a050' notitle"
	fi
	if [ -s "$OUT/stale.tsv" ]; then
		gnuplot -e "$common; set output '$OUT/stale.png'; set title 'stale connections: backend idle $STALE_IDLE, proxy upstream idle 600s'; set ylabel 'requests'; set style data histograms; set style histogram clustered gap 1; plot '$OUT/stale.tsv' every ::1 using 5:xtic(1) title 'client 5xx' lc rgb '#d06030', '' every ::1 using 6 title 'client errors' lc rgb '#909090', '' every ::1 using 8 title 'processed twice' lc rgb '#8040a0', '' every ::1 using 9 title 'backend resets (race hits)' lc rgb '#3070b0'"
	fi
	if [ "$DOCS" = 1 ]; then
		mkdir -p "$ROOT/docs/benchmarks"
		cp "$OUT"/*.png "$ROOT/docs/benchmarks/" 2>/dev/null || true
		log "charts copied to docs/benchmarks/"
	fi
}

report() {
	{
		echo "## Machine and versions"
		echo
		echo '| | |'
		echo '|---|---|'
		awk -F'\t' '{printf "| %s | %s |\n", $1, $2}' "$OUT/env.txt"
		if [ -s "$OUT/summary.tsv" ]; then
			echo
			echo "## Throughput"
			echo
			awk -F'\t' 'NR==1{print "| proxy | req/s | x nginx | x direct | p50 ms | p99 ms | p50 x nginx | p99 x nginx | CPU us/req | CPU x nginx | syscalls/req | peak RSS MiB | RSS x nginx | non-2xx | errors |"; print "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"; next}
				{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $6, $7, $3, $4, $8, $9, $14, $15, $16, $5, $10, $12, $13}' "$OUT/summary.tsv"
			echo
			full_vs_plain
		fi
		if [ -s "$OUT/stale.tsv" ]; then
			echo
			echo "## Stale connections"
			echo
			awk -F'\t' 'NR==1{print "| proxy | requests (GET/POST) | client 5xx | client errors | processed twice | backend resets (race hits) | backend idle closes |"; print "|---|--:|--:|--:|--:|--:|--:|"; next}
				{printf "| %s | %s (%s/%s) | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $8, $9, $10}' "$OUT/stale.tsv"
		fi
	} >"$OUT/report.md"
}

[ "$INSTALL" = 1 ] && install_peers
have go || { log "run.sh: go is required"; exit 1; }
LOADER=loadgen
if [ "$FORCE_LOADGEN" = 0 ] && have wrk; then LOADER=wrk; fi
build
write_env
[ "$DO_TPUT" = 1 ] && throughput
[ "$DO_STALE" = 1 ] && stale
if [ "$DO_STALE" = 1 ] && [ "$DO_REUSE" = 1 ]; then
	bash "$ROOT/bench/reuse.sh" -runs 1 -duration "$STALE_DURATION" -out "$OUT/reuse" || log "reuse scenario failed"
fi
if [ "$SMOKE" = 0 ]; then
	charts
fi
report
log "results in $OUT"

if [ "$SMOKE" = 1 ]; then
	read -r req non err < <(awk -F'\t' '$2=="sluice" || $2=="sluice-full"{r+=$3; n+=$7; e+=$8} END{print r+0, n+0, e+0}' "$OUT/results.tsv")
	if [ "$req" -le 0 ] || [ "$non" -gt 0 ]; then
		log "SMOKE FAILED: sluice served $req requests, $non non-2xx, $err socket errors"
		exit 1
	fi
	log "smoke ok: sluice served $req requests, $non non-2xx, $err socket errors"
fi
