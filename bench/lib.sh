# bench/lib.sh: helpers shared by the comparison scripts in bench/ (sourced, not run). A script
# calls bench_init, or (run.sh) sets TMP and declares PID and PORT (associative arrays) and
# STARTED (an array) itself.

log() { printf '%s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# bench_init name: the run's TMP directory (readable by proxies that drop privileges), the PID
# and PORT maps and the STARTED list, and cleanup trapped on EXIT.
bench_init() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-$1.XXXXXX")
	chmod 755 "$TMP"
	declare -gA PID=() PORT=()
	STARTED=()
	trap cleanup EXIT
}

# cleanup stops what the script started and removes TMP (trap it on EXIT).
cleanup() {
	local p
	for p in "${STARTED[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}

# free_port prints a loopback port nothing listens on and this run has not handed out, in
# PORT_LO..PORT_LO+PORT_SPAN-1 (default 20000-31999: below the ephemeral range, 32768-, where
# client sockets would hold ports). A script that runs beside others narrows the range. A range
# that reaches into the ephemeral range (/proc/sys/net/ipv4/ip_local_port_range) is refused:
# a port drawn there can be the one the kernel just gave an outgoing connection (wrk's, a
# proxy's to its backend), and the listener then fails to bind or the port is taken between
# the draw and the bind. Every script's first call assigns the port (x=$(free_port)), so
# under set -e the refusal stops the script.
free_port() {
	local p lo=${PORT_LO:-20000} span=${PORT_SPAN:-12000} eph=32768
	read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || eph=32768
	if ((span < 1 || lo < 1024 || lo + span > eph)); then
		log "free_port: PORT_LO=$lo PORT_SPAN=$span ($lo-$((lo + span - 1))) is not a range of ports in 1024-$((eph - 1)), below the ephemeral range ($eph-) that outgoing connections take ports from"
		return 1
	fi
	while :; do
		p=$((lo + RANDOM % span))
		[[ " ${PORT[*]} " == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
}

# wait_port name port: waits up to 5 s for a listener; prints its log if it never comes.
wait_port() {
	local i
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
		sleep 0.05
	done
	log "$1 did not come up on port $2"; cat "$TMP/$1.log" >&2 || true; return 1
}

# start_proc name port command...: runs command in the background with its output in
# $TMP/name.log, records it (PID[name], PORT[name], STARTED) and waits for its port.
start_proc() {
	local name=$1 port=$2
	shift 2
	"$@" >"$TMP/$name.log" 2>&1 &
	PID[$name]=$!
	PORT[$name]=$port
	STARTED+=("$!")
	wait_port "$name" "$port"
}

# cpu_ticks name: utime+stime of the process and its children (every thread counted).
cpu_ticks() {
	local p=${PID[$1]} total=0 k
	for k in "$p" $(cat /proc/"$p"/task/*/children 2>/dev/null); do
		total=$((total + $(awk '{print $14 + $15}' /proc/"$k"/stat 2>/dev/null || echo 0)))
	done
	echo "$total"
}

median() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

# build_base rev: builds Sluice from git revision rev into $TMP/bin/sluice-base (a script's
# -base flag), from the repository at $ROOT.
build_base() {
	log "building sluice-base from $1"
	mkdir -p "$TMP/base"
	(cd "$ROOT" && git archive "$1") | tar -x -C "$TMP/base"
	(cd "$TMP/base" && go build -buildvcs=false -o "$TMP/bin/sluice-base" ./cmd/sluice)
}

# round_ratios results col...: for each mode and round of results (tab-separated: mode,
# round, proxy, then the figures), sluice / sluice-base of each column col (1-based), "-"
# where the base's figure is 0.
round_ratios() {
	local f=$1
	shift
	awk -F'\t' -v cols="$*" '{ k=$1 "\t" $2; v[k, $3]=$0 } $3=="sluice"{ ks[++n]=k }
		END{ nc=split(cols, c, " "); for (i=1; i<=n; i++) { k=ks[i]; if (!((k, "sluice-base") in v)) continue
			split(v[k, "sluice"], a, "\t"); split(v[k, "sluice-base"], b, "\t"); line=k
			for (j=1; j<=nc; j++) line=line "\t" (b[c[j]]>0 ? sprintf("%.2f", a[c[j]]/b[c[j]]) : "-")
			print line } }' "$f"
}
