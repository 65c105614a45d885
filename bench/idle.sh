#!/usr/bin/env bash
# Measures Sluice's memory for N idle client keep-alive connections: RSS after a warm-up
# request, then with N connections each idle after one request.
# Usage: bash bench/idle.sh [-n N] [-bin SLUICE] [-tls] (-bin: a prebuilt sluice, e.g. to compare
# commits; -tls: the listener and the idle connections speak TLS, an ECDSA P-256 certificate)
# Ports: PORT_LO..PORT_LO+PORT_SPAN-1 (bench/lib.sh free_port; default 20000-31999, below the
# ephemeral range, which the N client connections draw from).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
declare -A PORT=()
n=10000 bin="" tls=""
while [ $# -gt 0 ]; do case "$1" in -n) n=$2; shift 2;; -bin) bin=$2; shift 2;; -tls) tls=1; shift;; *) echo "usage: $0 [-n N] [-bin SLUICE] [-tls]"; exit 2;; esac; done
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
if [ -n "$bin" ]; then cp "$bin" "$dir/sluice"; else go build -o "$dir/sluice" ./cmd/sluice; fi
go build -o "$dir/backend" ./bench/backend
go build -o "$dir/idleclient" ./bench/idleclient
bp=$(free_port); PORT[backend]=$bp
sp=$(free_port); PORT[sluice]=$sp
"$dir/backend" -addr "127.0.0.1:$bp" & pids+=($!)
tlsblock="" scheme=http
if [ -n "$tls" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 -nodes -subj /CN=localhost \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
	tlsblock=", tls: {certificates: [{cert_file: $dir/cert.pem, key_file: $dir/key.pem}]}" scheme=https
fi
cat > "$dir/sluice.yaml" <<YAML
listeners: [{address: "127.0.0.1:$sp", idle_timeout: 300s$tlsblock}]
upstreams: [{id: be, targets: [{address: "127.0.0.1:$bp"}]}]
routes: [{id: all, upstream: be}]
log: {access: "off", level: warn}
admin: {enabled: false}
YAML
"$dir/sluice" run -c "$dir/sluice.yaml" 2>"$dir/sluice.log" & spid=$!; pids+=($spid)
for _ in $(seq 50); do curl -kfsS "$scheme://127.0.0.1:$sp/" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss "$spid")
mkfifo "$dir/hold"
"$dir/idleclient" -addr "127.0.0.1:$sp" -n "$n" -hold 120s ${tls:+-tls} < "$dir/hold" > "$dir/client.out" & cpid=$!; pids+=($cpid)
exec 3>"$dir/hold"
for _ in $(seq 600); do grep -q ready "$dir/client.out" 2>/dev/null && break; sleep 0.2; done
sleep 10
after=$(rss "$spid")
cat "$dir/client.out"
echo "sluice RSS before: $((before/1024)) MiB, with $n idle connections: $((after/1024)) MiB, growth: $(((after-before)/1024)) MiB ($(( (after-before)*1024/n )) bytes per connection)"
exec 3>&-
wait "$cpid" || true
