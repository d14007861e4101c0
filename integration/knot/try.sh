#!/usr/bin/env bash
# End-to-end check of run-knot.sh inside throwaway network namespaces.
#   vipdknot-srv (192.0.2.53/24, 2001:db8::53/64) <-veth-> vipdknot-cli (192.0.2.200/24, 2001:db8::200/64)
# Role A: site.example. with TSIG-signed dynamic update (nsupdate), bad key refused.
# Role B: cluster.example. read-only, dnsperf 5 s (if dnsperf is installed).
# Needs root, iproute2, knot, dnsutils (dig, nsupdate); optional dnsperf.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SRV=vipdknot-srv CLI=vipdknot-cli
SRV4=192.0.2.53 CLI4=192.0.2.200
SRV6=2001:db8::53 CLI6=2001:db8::200
KEYNAME=vipd-key.
work=$(mktemp -d /tmp/vipdknot.XXXXXX)
knot_pid=

log() { printf '\n=== %s\n' "$*"; }

stop_knot() {
    if [ -n "$knot_pid" ]; then
        kill "$knot_pid" 2>/dev/null || true
        wait "$knot_pid" 2>/dev/null || true
        knot_pid=
    fi
}

del_ns() {
    local ns=$1 pid
    ip netns list | grep -qw "^$ns" || return 0
    # Leftovers from an earlier aborted run: only processes inside our own namespace.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    sleep 0.2
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
}

cleanup() {
    stop_knot
    del_ns "$SRV"
    del_ns "$CLI"
    rm -rf -- "$work"
}
trap cleanup EXIT

in_srv() { ip netns exec "$SRV" "$@"; }
in_cli() { ip netns exec "$CLI" "$@"; }

# ---------------------------------------------------------------- topology
del_ns "$SRV"; del_ns "$CLI"
ip netns add "$SRV"
ip netns add "$CLI"
ip link add vipdknot-s type veth peer name vipdknot-c
ip link set vipdknot-s netns "$SRV"
ip link set vipdknot-c netns "$CLI"
in_srv ip link set lo up
in_cli ip link set lo up
in_srv ip addr add "$SRV4/24" dev vipdknot-s
in_cli ip addr add "$CLI4/24" dev vipdknot-c
in_srv ip addr add "$SRV6/64" dev vipdknot-s nodad
in_cli ip addr add "$CLI6/64" dev vipdknot-c nodad
in_srv ip link set vipdknot-s up
in_cli ip link set vipdknot-c up

wait_soa() { # zone
    local i
    for i in $(seq 1 50); do
        if in_cli dig +time=1 +tries=1 +short @"$SRV4" "$1" SOA 2>/dev/null | grep -q .; then
            return 0
        fi
        if ! kill -0 "$knot_pid" 2>/dev/null; then echo "knotd died" >&2; return 1; fi
        sleep 0.1
    done
    echo "knotd did not answer for $1" >&2
    return 1
}

# ---------------------------------------------------------------- role A
log "role A: site.example. with TSIG update"
SECRET=$(head -c 32 /dev/urandom | base64)
BADSECRET=$(head -c 32 /dev/urandom | base64)
cat >"$work/site.example.zone" <<'EOF'
$ORIGIN site.example.
$TTL 60
@           SOA  ns1 hostmaster 1 3600 600 86400 5
@           NS   ns1
ns1         A    192.0.2.53
ns1         AAAA 2001:db8::53
nbu-master  5 A  192.0.2.1
EOF
"$here/run-knot.sh" "$SRV" "$work/a" "$SRV4,$SRV6" site.example. "$work/site.example.zone" \
    "$KEYNAME" "$SECRET" 2>"$work/knot-a.log" &
knot_pid=$!
wait_soa site.example. || { cat "$work/knot-a.log"; exit 1; }
echo "knotd pid $knot_pid answering; SOA: $(in_cli dig +short @"$SRV4" site.example. SOA)"

log "nsupdate signed with the right key"
in_cli nsupdate -y "hmac-sha256:$KEYNAME:$SECRET" -d <<EOF 2>&1 | grep -E 'status|TSIG|update|Reply|failed' || true
server $SRV4 53
zone site.example.
update delete nbu-master.site.example. A
update delete nbu-master.site.example. AAAA
update add nbu-master.site.example. 5 A 192.0.2.100
update add nbu-master.site.example. 5 AAAA 2001:db8::100
send
EOF
a=$(in_cli dig +short @"$SRV4" nbu-master.site.example A)
aaaa=$(in_cli dig +short @"$SRV4" nbu-master.site.example AAAA)
echo "dig A    -> $a"
echo "dig AAAA -> $aaaa"
[ "$a" = 192.0.2.100 ] || { echo "FAIL: A not updated"; cat "$work/knot-a.log"; exit 1; }
[ "$aaaa" = 2001:db8::100 ] || { echo "FAIL: AAAA not updated"; exit 1; }
echo "SOA after update: $(in_cli dig +short @"$SRV4" site.example. SOA)"

log "dig +tcp flags"
in_cli dig +tcp @"$SRV4" nbu-master.site.example A | grep -E 'flags:|status:|SERVER'
in_cli dig +tcp @"$SRV4" nbu-master.site.example A | grep -q 'flags: qr aa' || { echo "FAIL: no qr aa"; exit 1; }
v6=$(in_cli dig +short @"$SRV6" nbu-master.site.example AAAA)
echo "AAAA over IPv6 transport -> $v6"
[ "$v6" = 2001:db8::100 ] || { echo "FAIL: IPv6 listen"; exit 1; }
in_cli dig @"$SRV4" nbu-master.site.example A +noall +answer

log "second update (vipd failover: replace A twice in one nsupdate session)"
in_cli nsupdate -y "hmac-sha256:$KEYNAME:$SECRET" <<EOF
server $SRV4 53
zone site.example.
update delete nbu-master.site.example. A
update add nbu-master.site.example. 5 A 192.0.2.101
send
update delete nbu-master.site.example. A
update add nbu-master.site.example. 5 A 192.0.2.100
send
EOF
echo "SOA serial now: $(in_cli dig +short @"$SRV4" site.example. SOA | cut -d' ' -f3)"
[ "$(in_cli dig +short @"$SRV4" nbu-master.site.example A)" = 192.0.2.100 ] || { echo "FAIL: second update"; exit 1; }

log "knotc over WORKDIR/knot.sock"
knotc -c "$work/a/knot.conf" status
knotc -c "$work/a/knot.conf" zone-status site.example.
ls "$work/a"

bad_update() { # label, nsupdate args...
    local label=$1; shift
    log "nsupdate: $label"
    local out rc=0
    out=$(in_cli nsupdate "$@" <<EOF 2>&1
server $SRV4 53
zone site.example.
update delete nbu-master.site.example. A
update add nbu-master.site.example. 5 A 192.0.2.66
send
EOF
    ) || rc=$?
    echo "$out"
    echo "nsupdate exit code $rc"
    [ "$rc" -ne 0 ] || { echo "FAIL: $label accepted"; exit 1; }
    [ "$(in_cli dig +short @"$SRV4" nbu-master.site.example A)" = 192.0.2.100 ] \
        || { echo "FAIL: record changed by $label"; exit 1; }
}
bad_update "wrong secret (same key name)" -y "hmac-sha256:$KEYNAME:$BADSECRET"
bad_update "unknown key name"              -y "hmac-sha256:other-key.:$SECRET"
bad_update "unsigned"

log "knotd log (role A)"
cat "$work/knot-a.log"
stop_knot

# ---------------------------------------------------------------- role B
log "role B: cluster.example. read-only"
cat >"$work/cluster.example.zone" <<'EOF'
$ORIGIN cluster.example.
$TTL 300
@        SOA  ns1 hostmaster 2024010101 3600 600 86400 300
@        NS   ns1
ns1      A    192.0.2.53
ns1      AAAA 2001:db8::53
vip      A    192.0.2.10
vip      AAAA 2001:db8::10
node1    A    192.0.2.11
node2    A    192.0.2.12
info     TXT  "vipd benchmark zone"
EOF
"$here/run-knot.sh" "$SRV" "$work/b" "$SRV4" cluster.example "$work/cluster.example.zone" \
    2>"$work/knot-b.log" &
knot_pid=$!
wait_soa cluster.example. || { cat "$work/knot-b.log"; exit 1; }
in_cli dig @"$SRV4" vip.cluster.example A | grep -E 'flags:|status:|^vip'

log "role B refuses updates (no ACL)"
rc=0
out=$(in_cli nsupdate -y "hmac-sha256:$KEYNAME:$SECRET" <<EOF 2>&1
server $SRV4 53
zone cluster.example.
update add x.cluster.example. 5 A 192.0.2.99
send
EOF
) || rc=$?
echo "$out"; echo "nsupdate exit code $rc"
[ "$rc" -ne 0 ] || { echo "FAIL: update accepted on read-only zone"; exit 1; }

if command -v dnsperf >/dev/null; then
    log "dnsperf 5 s against cluster.example."
    cat >"$work/queries" <<'EOF'
vip.cluster.example A
vip.cluster.example AAAA
node1.cluster.example A
node2.cluster.example A
info.cluster.example TXT
cluster.example SOA
cluster.example NS
missing.cluster.example A
EOF
    in_cli dnsperf -s "$SRV4" -d "$work/queries" -l 5 -c 4 -T 1 -q 200 >"$work/dnsperf.out" 2>&1 || true
    grep -E 'Queries sent|Queries completed|Queries lost|Response codes|Queries per second|Average Latency' "$work/dnsperf.out"
else
    echo "dnsperf not installed; skipping benchmark"
fi
stop_knot

echo
echo "ALL OK"
