#!/usr/bin/env bash
# bench/ratelimit.sh: the cost and the accuracy of a rate limit, Sluice against nginx's
# limit_req, side by side in one run (docs/benchmarks.md).
#
#   bash bench/ratelimit.sh [-rounds 3] [-duration 5] [-connections 32] [-rate 1000]
#
# One plain Go backend (bench/backend) behind four servers on loopback ports 25500-25999:
# sluice and nginx without a limit, and each with a per-client-IP limit. wrk (-t1) runs
# against each in turn, the order rotated each round.
#   cost:     the limit never refuses (sluice rate-limit limit 1e9/s; nginx limit_req
#             rate=1000000r/s burst=1000000 nodelay): req/s with the limit against without.
#   accuracy: -rate requests per second per client IP, no burst (sluice gcra; nginx
#             limit_req burst=0, limit_req_status 429): admitted (2xx) per second against
#             -rate, and how fast the refusals are answered.
# Reported: medians over rounds. Only processes started here are stopped (trap EXIT).
set -euo pipefail

ROUNDS=3 DURATION=5 CONNS=32 RATE=1000
while [ $# -gt 0 ]; do
	case "$1" in
	-rounds) ROUNDS=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-connections) CONNS=$2; shift ;;
	-rate) RATE=$2; shift ;;
	-h | -help | --help) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 0 ;;
	*) echo "ratelimit.sh: unknown flag $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
bench_init rl

# free_port (bench/lib.sh) hands out ports from PORT_LO..PORT_LO+PORT_SPAN-1 only.
PORT_LO=${PORT_LO:-25500} PORT_SPAN=${PORT_SPAN:-500}

for bin in wrk nginx; do have "$bin" || { log "ratelimit.sh needs $bin (apt-get install $bin)"; exit 1; }; done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "building sluice and the backend into $TMP/bin"
(cd "$ROOT" && go build -o "$TMP/bin/" ./cmd/sluice ./bench/backend)

BPORT=$(free_port); PORT[backend]=$BPORT
"$TMP/bin/backend" -addr "127.0.0.1:$BPORT" -size 300 >"$TMP/backend.log" 2>&1 &
STARTED+=("$!"); PID[backend]=$!
wait_port backend "$BPORT"

sluice_limit() { # scenario
	case "$1" in
	plain) ;;
	cost) printf '    plugins:\n      - name: rate-limit\n        config: {limit: 1000000000, window: 1s}\n' ;;
	accuracy) printf '    plugins:\n      - name: rate-limit\n        config: {algorithm: gcra, limit: %s, window: 1s}\n' "$RATE" ;;
	esac
}
nginx_limit() { # scenario: the zone (http level) and the location's limit_req
	case "$1" in
	plain) echo "|" ;;
	cost) echo "limit_req_zone \$binary_remote_addr zone=rl:10m rate=1000000r/s;|limit_req zone=rl burst=1000000 nodelay;" ;;
	accuracy) echo "limit_req_zone \$binary_remote_addr zone=rl:10m rate=${RATE}r/s; limit_req_status 429;|limit_req zone=rl;" ;;
	esac
}

start() { # name server scenario
	local name=$1 server=$2 scen=$3 dir="$TMP/$1" port
	port=$(free_port); PORT[$name]=$port
	mkdir -p "$dir"; chmod 755 "$dir"
	case "$server" in
	sluice)
		{
			printf 'listeners: [{address: "127.0.0.1:%s"}]\n' "$port"
			printf 'upstreams: [{id: b, targets: [{address: "127.0.0.1:%s"}], keepalive: {max_idle: 256}}]\n' "$BPORT"
			printf 'log: {level: warn, access: "off"}\nadmin: {enabled: false}\nroutes:\n  - id: all\n    upstream: b\n'
			sluice_limit "$scen"
		} >"$dir/sluice.yaml"
		"$TMP/bin/sluice" run -c "$dir/sluice.yaml" >"$TMP/$name.log" 2>&1 & ;;
	nginx)
		local user="" lim http loc
		[ "$(id -u)" = 0 ] && user="user root;"
		lim=$(nginx_limit "$scen"); http=${lim%%|*}; loc=${lim#*|}
		cat >"$dir/nginx.conf" <<-EOF
			$user
			worker_processes 2;
			pid $dir/nginx.pid;
			error_log $dir/error.log error;
			events { worker_connections 4096; }
			http {
			    access_log off;
			    $http
			    upstream b { server 127.0.0.1:$BPORT; keepalive 256; }
			    server {
			        listen 127.0.0.1:$port;
			        location / {
			            $loc
			            proxy_pass http://b;
			            proxy_http_version 1.1;
			            proxy_set_header Connection "";
			        }
			    }
			}
		EOF
		"$NGINX" -p "$dir/" -e stderr -c "$dir/nginx.conf" -g 'daemon off;' >"$TMP/$name.log" 2>&1 & ;;
	esac
	PID[$name]=$!
	STARTED+=("$!")
	wait_port "$name" "$port"
}

servers=()
for s in sluice nginx; do
	for scen in plain cost accuracy; do
		start "$s-$scen" "$s" "$scen"
		servers+=("$s-$scen")
	done
done

# run name: one wrk run; prints req/s, non-2xx count, total requests.
run() {
	local o
	o=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${PORT[$1]}/x" 2>&1)
	awk -v d="$DURATION" '
		/Requests\/sec/ { rps = $2 }
		/requests in/ { total = $1 }
		/Non-2xx or 3xx responses/ { non = $5 }
		END { printf "%.0f\t%d\t%d\t%.1f\n", rps, total, non + 0, (total - non) / d }' <<<"$o"
}

results="$TMP/results.tsv"
for r in $(seq 1 "$ROUNDS"); do
	n=${#servers[@]}
	for i in $(seq 0 $((n - 1))); do
		s=${servers[$(((i + r) % n))]}
		line=$(run "$s")
		printf '%s\t%s\t%s\n' "$r" "$s" "$line" >>"$results"
		log "$(printf 'round %s %-16s %s' "$r" "$s" "$line")"
		# Let the accuracy limits' buckets refill between runs (one second is a full GCRA
		# bucket with no burst).
		sleep 1
	done
done

col() { awk -F'\t' -v p="$1" -v c="$2" '$2==p{print $c}' "$results" | median; }
echo
echo "Rate limits: medians over $ROUNDS rounds x ${DURATION}s, $CONNS connections, wrk -t1; machine: $(nproc) CPUs, shared with other work"
printf 'server\treq_per_s\tx_plain\tadmitted_per_s\tlimit_per_s\n'
for s in sluice nginx; do
	plain=$(col "$s-plain" 3)
	for scen in plain cost accuracy; do
		rps=$(col "$s-$scen" 3); adm=$(col "$s-$scen" 6)
		lim="-"; [ "$scen" = accuracy ] && lim=$RATE
		awk -v n="$s-$scen" -v r="$rps" -v p="$plain" -v a="$adm" -v l="$lim" \
			'BEGIN{ printf "%s\t%.0f\t%.2f\t%s\t%s\n", n, r, (p>0 ? r/p : 0), (l=="-" ? "-" : a), l }'
	done
done
