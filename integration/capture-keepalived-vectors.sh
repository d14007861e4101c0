#!/usr/bin/env bash
# Capture real VRRP advertisements sent by keepalived and store them as hex
# test vectors in tests/vectors/ (plus tests/vectors/README.md).
#
# Usage:  sudo bash integration/capture-keepalived-vectors.sh
#
# Needs root, iproute2, keepalived, tcpdump and python3 (stdlib only);
# tshark is optional (used to cross-check the checksums).
# Environment:
#   VIPDCAP_PCAP_DIR=DIR  also copy the raw pcaps and keepalived logs to DIR
#
# Network safety: everything runs inside two network namespaces created here
# (vipdcap-a, vipdcap-b) joined by a veth pair. keepalived runs only in
# vipdcap-a, tcpdump only in vipdcap-b. Only documentation addresses
# (192.0.2.0/24, 2001:db8::/32, fe80::/64) are used. The namespaces, the veth
# pair (it dies with the namespaces) and every process started here are
# removed on exit, also on failure. Processes are ended by their own PID.
set -euo pipefail

NS_A=vipdcap-a
NS_B=vipdcap-b
MAC_A=02:00:00:00:00:11   # fixed MACs -> stable EUI-64 link-local addresses
MAC_B=02:00:00:00:00:12

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR="$REPO_ROOT/tests/vectors"

TMP=""
KA_PID=""
TD_PID=""

log() { printf '[capture] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# End a process by PID: SIGTERM, wait up to ~5 s, then SIGKILL.
stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -s "$sig" "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -s KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# keepalived's VRRP child, found through our private pid file.
stop_keepalived_child() {
    local f=$1 pid
    [[ -f "$f" ]] || return 0
    pid=$(cat "$f" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -s KILL "$pid" 2>/dev/null || true
    fi
}

cleanup() {
    local rc=$?
    set +e
    if [[ -n "$KA_PID" ]]; then
        stop_pid "$KA_PID" TERM
        KA_PID=""
    fi
    if [[ -n "$TMP" ]]; then
        local f
        for f in "$TMP"/*.vrrp.pid; do
            [[ -e "$f" ]] && stop_keepalived_child "$f"
        done
    fi
    if [[ -n "$TD_PID" ]]; then
        stop_pid "$TD_PID" INT
        TD_PID=""
    fi
    ip netns del "$NS_A" 2>/dev/null
    ip netns del "$NS_B" 2>/dev/null
    if [[ -n "$TMP" && -d "$TMP" ]]; then
        rm -rf -- "$TMP"
    fi
    if (( rc != 0 )); then
        log "failed (exit $rc); namespaces and processes cleaned up"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- checks
(( EUID == 0 )) || die "must run as root (sudo bash $0)"
for tool in ip keepalived tcpdump; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y keepalived tcpdump)"
done
PYTHON=$(command -v python3 || true)
[[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3
[[ -n "$PYTHON" ]] || die "python3 not found"
TSHARK=$(command -v tshark || true)

# (no `| head`: with pipefail an early-closing reader can SIGPIPE the writer)
KA_VERSION=$(keepalived --version 2>&1 | sed -n 1p)
log "using $KA_VERSION"

TMP=$(mktemp -d /tmp/vipdcap.XXXXXX)
chmod 755 "$TMP"

# ---------------------------------------------------------------- namespaces
setup_netns() {
    local ns
    # Remove leftovers of an earlier, killed run (only our own names).
    for ns in "$NS_A" "$NS_B"; do
        if ip netns list | awk '{print $1}' | grep -x -- "$ns" >/dev/null; then
            log "removing stale namespace $ns"
            ip netns del "$ns"
        fi
    done
    ip netns add "$NS_A"
    ip netns add "$NS_B"
    # Created directly inside vipdcap-a; the peer goes straight to vipdcap-b.
    ip -n "$NS_A" link add eth0 address "$MAC_A" type veth \
        peer name eth0 address "$MAC_B" netns "$NS_B"
    local pair
    for pair in "$NS_A:11" "$NS_B:12"; do
        ns=${pair%%:*}
        local host=${pair##*:}
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth0.accept_dad=0
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth0.addr_gen_mode=0
        ip -n "$ns" addr add "192.0.2.$host/24" dev eth0
        ip -n "$ns" addr add "2001:db8::$host/64" dev eth0 nodad
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
    done
    # Wait for the link-local address to appear in vipdcap-a.
    local i
    for i in $(seq 50); do
        if ip -n "$NS_A" -6 addr show dev eth0 scope link | grep 'inet6 fe80::' >/dev/null; then
            break
        fi
        sleep 0.1
    done
    ip -n "$NS_A" -6 addr show dev eth0 scope link | grep 'inet6 fe80::' >/dev/null \
        || die "no link-local address on $NS_A eth0"
}

# ---------------------------------------------------------------- configs
# write_conf NAME VERSION VRID PRIO ADVERT_INT EXTRA_GLOBAL VIP...
write_conf() {
    local name=$1 version=$2 vrid=$3 prio=$4 advert=$5 extra=$6
    shift 6
    {
        echo "global_defs {"
        echo "    router_id vipdcap"
        echo "    vrrp_version $version"
        [[ -n "$extra" ]] && echo "    $extra"
        echo "}"
        echo "vrrp_instance VI_$name {"
        echo "    state MASTER"
        echo "    interface eth0"
        echo "    virtual_router_id $vrid"
        echo "    priority $prio"
        echo "    advert_int $advert"
        echo "    virtual_ipaddress {"
        local vip
        for vip in "$@"; do
            echo "        $vip"
        done
        echo "    }"
        echo "}"
    } >"$TMP/$name.conf"
}

# Check a config in vipdcap-a with `keepalived -t`; print its complaints.
config_errors() {
    local name=$1
    ip netns exec "$NS_A" keepalived -t -f "$TMP/$name.conf" \
        -p "$TMP/$name.test.pid" -r "$TMP/$name.test.vrrp.pid" \
        -c "$TMP/$name.test.check.pid" -b "$TMP/$name.test.bfd.pid" 2>&1 || true
}

# ---------------------------------------------------------------- capture
wait_for_file_text() {  # FILE TEXT TIMEOUT_TENTHS
    local f=$1 text=$2 n=$3 i
    for i in $(seq "$n"); do
        grep -q -- "$text" "$f" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# capture NAME SECONDS: run keepalived with $TMP/NAME.conf in vipdcap-a for
# SECONDS (even with `state MASTER`, keepalived 2.2.7 first spends about
# 3 * advert_int + skew in BACKUP state (init) before its first advert), then
# SIGTERM it (graceful stop -> priority 0 advert) while tcpdump
# in vipdcap-b writes $TMP/NAME.pcap.
capture() {
    local name=$1 secs=$2
    local pcap="$TMP/$name.pcap" klog="$TMP/$name.log" tlog="$TMP/$name.tcpdump.log"
    log "capturing $name (${secs}s)"

    ip netns exec "$NS_B" tcpdump -n -i eth0 -U -Z root -s 0 -w "$pcap" \
        'ip proto 112 or ip6 proto 112' >"$tlog" 2>&1 &
    TD_PID=$!
    wait_for_file_text "$tlog" "listening on" 50 \
        || { cat "$tlog" >&2; die "tcpdump did not start"; }

    # -n foreground, -P VRRP only, -l -D log details to console, -G no syslog,
    # private pid files for parent / VRRP / checker / BFD processes.
    ip netns exec "$NS_A" keepalived -n -P -l -D -G -f "$TMP/$name.conf" \
        -p "$TMP/$name.pid" -r "$TMP/$name.vrrp.pid" \
        -c "$TMP/$name.check.pid" -b "$TMP/$name.bfd.pid" >"$klog" 2>&1 &
    KA_PID=$!

    sleep "$secs"
    kill -0 "$KA_PID" 2>/dev/null || { cat "$klog" >&2; die "keepalived ($name) exited early"; }
    grep -q "Entering MASTER STATE" "$klog" \
        || { cat "$klog" >&2; die "keepalived ($name) never became master"; }
    # Graceful stop: SIGTERM to the keepalived parent, by PID.
    stop_pid "$KA_PID" TERM
    KA_PID=""
    stop_keepalived_child "$TMP/$name.vrrp.pid"
    sleep 1   # let the priority-0 advert reach the capture
    stop_pid "$TD_PID" INT
    TD_PID=""
    [[ -s "$pcap" ]] || die "empty capture for $name"
}

# ---------------------------------------------------------------- runs
setup_netns

# (a) VRRPv3 IPv4, default checksum, two VIPs (count=2); its graceful stop
#     also gives the priority-0 vector (e).
write_conf v3-ipv4 3 51 150 1 "" 192.0.2.100/24 192.0.2.101/24
capture v3-ipv4 7

# (a') VRRPv3 IPv4 with advert_int 0.1 (10 centiseconds).
write_conf v3-ipv4-centisec 3 51 150 0.1 "" 192.0.2.100/24
errs=$(config_errors v3-ipv4-centisec)
if grep -qiE 'advert|error' <<<"$errs"; then
    log "advert_int 0.1 complaints: $errs"
fi
printf '%s\n' "$errs" >"$TMP/v3-ipv4-centisec.configtest"
capture v3-ipv4-centisec 3

# (b) VRRPv3 IPv4 with v3_checksum_as_v2 (keyword added in keepalived 2.2.8).
write_conf v3-ipv4-nopseudo 3 51 150 1 "v3_checksum_as_v2" 192.0.2.100/24 192.0.2.101/24
errs=$(config_errors v3-ipv4-nopseudo)
if grep -qi 'v3_checksum_as_v2' <<<"$errs"; then
    log "keepalived does not support v3_checksum_as_v2; skipping that capture"
    printf '%s\n' "$errs" | grep -i 'v3_checksum_as_v2' | sed -n 1,3p >"$TMP/v3-ipv4-nopseudo.unsupported"
else
    capture v3-ipv4-nopseudo 7
fi

# (c) VRRPv3 IPv6.
write_conf v3-ipv6 3 52 200 1 "" 2001:db8::100/64
capture v3-ipv6 7

# (d) VRRPv2 IPv4, no authentication.
write_conf v2-ipv4 2 53 100 1 "" 192.0.2.102/24
capture v2-ipv4 7

# ---------------------------------------------------------------- extract
cat >"$TMP/extract.py" <<'PYEOF'
import json, os, struct, subprocess, sys

tmp, out_dir, ka_version, tshark = sys.argv[1:5]

VECTORS = [
    # file, run, wanted advert, description
    ("keepalived-v3-ipv4-pseudo.hex", "v3-ipv4", "normal",
     "VRRPv3 IPv4, keepalived default checksum, two VIPs"),
    ("keepalived-v3-ipv4-nopseudo.hex", "v3-ipv4-nopseudo", "normal",
     "VRRPv3 IPv4 with v3_checksum_as_v2"),
    ("keepalived-v3-ipv4-centisec.hex", "v3-ipv4-centisec", "normal",
     "VRRPv3 IPv4, advert_int 0.1"),
    ("keepalived-v3-ipv4-prio0.hex", "v3-ipv4", "prio0",
     "VRRPv3 IPv4, priority 0 advert sent on SIGTERM while master"),
    ("keepalived-v3-ipv6.hex", "v3-ipv6", "normal",
     "VRRPv3 IPv6 (VRRP message only)"),
    ("keepalived-v2-ipv4.hex", "v2-ipv4", "normal",
     "VRRPv2 IPv4, no authentication"),
]


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise SystemExit("%s: not a classic pcap file" % path)
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit("%s: link type %d, expected Ethernet" % (path, linktype))
    off, n = 24, 0
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        n += 1
        yield n, data[off:off + incl]
        off += incl


def parse(frame):
    """Return dict for a VRRP packet inside an Ethernet frame, or None."""
    etype = struct.unpack("!H", frame[12:14])[0]
    l3 = frame[14:]
    if etype == 0x0800:
        ihl = (l3[0] & 0x0F) * 4
        total = struct.unpack("!H", l3[2:4])[0]
        if l3[9] != 112:
            return None
        pkt = l3[:total]
        return dict(family=4, packet=pkt, vrrp=pkt[ihl:], src=pkt[12:16],
                    dst=pkt[16:20], ttl=pkt[8], ipid=struct.unpack("!H", pkt[4:6])[0],
                    tos=pkt[1], frag=struct.unpack("!H", pkt[6:8])[0],
                    ip_csum=struct.unpack("!H", pkt[10:12])[0],
                    ip_csum_ok=csum(pkt[:ihl]) == 0, ihl=ihl)
    if etype == 0x86DD:
        if l3[6] != 112:
            return None  # no extension headers expected
        plen = struct.unpack("!H", l3[4:6])[0]
        pkt = l3[:40 + plen]
        return dict(family=6, packet=pkt, vrrp=pkt[40:], src=pkt[8:24],
                    dst=pkt[24:40], ttl=pkt[7],
                    tos=(struct.unpack("!I", pkt[0:4])[0] >> 20) & 0xFF)
    return None


def ipstr(b):
    import ipaddress
    return str(ipaddress.ip_address(bytes(b)))


def checksums(p):
    v = bytearray(p["vrrp"])
    got = struct.unpack("!H", v[6:8])[0]
    v[6:8] = b"\0\0"
    v = bytes(v)
    res = {"got": got, "message_only": csum(v)}
    if p["family"] == 4:
        ph = p["src"] + p["dst"] + bytes([0, 112]) + struct.pack("!H", len(v))
    else:
        ph = p["src"] + p["dst"] + struct.pack("!I", len(v)) + bytes([0, 0, 0, 112])
    res["pseudo"] = csum(ph + v)
    if got == res["pseudo"] and got == res["message_only"]:
        form = "ambiguous (both forms equal)"
    elif got == res["pseudo"]:
        form = "with IPv%d pseudo-header" % p["family"]
    elif got == res["message_only"]:
        form = "VRRP message only (no pseudo-header)"
    else:
        form = "MATCHES NEITHER FORM"
    res["form"] = form
    return res


def decode(v):
    ver, typ = v[0] >> 4, v[0] & 0x0F
    d = dict(version=ver, type=typ, vrid=v[1], priority=v[2], count=v[3])
    if ver == 3:
        d["interval"] = struct.unpack("!H", v[4:6])[0] & 0x0FFF
        d["interval_unit"] = "cs"
        d["rsvd"] = v[4] >> 4
        body = v[8:]
    else:
        d["auth_type"] = v[4]
        d["interval"] = v[5]
        d["interval_unit"] = "s"
        body = v[8:]
    return d, body


def vip_list(d, body, family):
    alen = 4 if family == 4 else 16
    return [ipstr(body[i * alen:(i + 1) * alen]) for i in range(d["count"])]


def tshark_verdict(pcap, frame_no, pref_as_v2):
    if not tshark:
        return "tshark not installed"
    cmd = [tshark, "-n", "-r", pcap, "-V", "-Y", "frame.number == %d" % frame_no,
           "-o", "vrrp.v3_checksum_as_in_v2:%s" % ("TRUE" if pref_as_v2 else "FALSE")]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except Exception as e:  # noqa
        return "tshark failed: %s" % e
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Checksum:"):
            return s
    return "no checksum line"


def hexlines(b):
    return [" ".join("%02x" % x for x in b[i:i + 16]) for i in range(0, len(b), 16)]


rows, missing = [], []
tshark_log = []
for fname, run, want, desc in VECTORS:
    pcap = os.path.join(tmp, run + ".pcap")
    outp = os.path.join(out_dir, fname)
    if not os.path.exists(pcap):
        reason = "not captured"
        uf = os.path.join(tmp, run + ".unsupported")
        if os.path.exists(uf):
            reason = "keepalived rejected the config: " + open(uf).read().strip().replace("\n", " / ")
        missing.append((fname, desc, reason))
        if os.path.exists(outp):
            os.remove(outp)
        continue
    chosen = None
    n_adverts = 0
    for n, frame in read_pcap(pcap):
        p = parse(frame)
        if p is None:
            continue
        n_adverts += 1
        prio = p["vrrp"][2]
        if chosen is None and ((want == "prio0") == (prio == 0)):
            chosen = (n, p)
    if chosen is None:
        raise SystemExit("%s: no %s advert in %s" % (fname, want, pcap))
    n, p = chosen
    d, body = decode(p["vrrp"])
    cs = checksums(p)
    if cs["form"] == "MATCHES NEITHER FORM":
        raise SystemExit("%s: checksum 0x%04x matches neither form" % (fname, cs["got"]))
    vips = vip_list(d, body, p["family"])
    conf = [l.rstrip() for l in open(os.path.join(tmp, run + ".conf"))]
    ts_default = tshark_verdict(pcap, n, False)
    ts_as_v2 = tshark_verdict(pcap, n, True) if (d["version"] == 3 and p["family"] == 4) else "-"
    data = p["packet"] if p["family"] == 4 else p["vrrp"]
    hdr = [
        "# %s" % desc,
        "# captured from: %s (Debian package), run inside network namespaces" % ka_version,
        "# regenerate with: sudo bash integration/capture-keepalived-vectors.sh",
        "# contents: %s" % ("whole IPv4 packet (IPv4 header + VRRP message)" if p["family"] == 4
                            else "VRRP message only (bytes after the IPv6 header)"),
        "# length: %d bytes" % len(data),
        "# source: %s  destination: %s  %s: %d" % (
            ipstr(p["src"]), ipstr(p["dst"]), "TTL" if p["family"] == 4 else "hop limit", p["ttl"]),
    ]
    if p["family"] == 4:
        hdr.append("# IPv4 header: %d bytes, TOS 0x%02x, flags/fragment 0x%04x, identification 0x%04x,"
                   " header checksum 0x%04x (%s)"
                   % (p["ihl"], p["tos"], p["frag"], p["ipid"], p["ip_csum"],
                      "valid" if p["ip_csum_ok"] else "INVALID"))
    else:
        hdr.append("# IPv6 header: traffic class 0x%02x, next header 112; flow label not kept (set by the kernel)"
                   % p["tos"])
    hdr += [
        "# VRRP: version %d type %d vrid %d priority %d count %d %s %d %s" % (
            d["version"], d["type"], d["vrid"], d["priority"], d["count"],
            "max_advert_int" if d["version"] == 3 else "advert_int", d["interval"],
            "centiseconds" if d["version"] == 3 else "seconds")
        + ("" if d["version"] == 3 else " auth_type %d" % d["auth_type"]),
        "# addresses: %s" % ", ".join(vips),
        "# checksum: 0x%04x = %s (computed: with pseudo-header 0x%04x, message only 0x%04x)" % (
            cs["got"], cs["form"], cs["pseudo"], cs["message_only"]),
        "# tshark: %s%s" % (ts_default, "" if ts_as_v2 == "-" else
                             "; with vrrp.v3_checksum_as_in_v2:TRUE: %s" % ts_as_v2),
        "# keepalived.conf:",
    ] + ["#   " + l for l in conf if l.strip()]
    with open(outp, "w") as f:
        f.write("\n".join(hdr + hexlines(data)) + "\n")
    rows.append(dict(file=fname, desc=desc, d=d, cs=cs, vips=vips, src=ipstr(p["src"]),
                     dst=ipstr(p["dst"]), ttl=p["ttl"], family=p["family"], len=len(data),
                     ts=ts_default, ts2=ts_as_v2, frame=n, adverts=n_adverts, run=run))

# ---- README
L = []
L.append("# keepalived VRRP test vectors")
L.append("")
L.append("Real VRRP advertisements captured from **%s** (Debian package `keepalived`)." % ka_version)
L.append("")
L.append("Regenerate (needs root, `keepalived`, `tcpdump`, `python3`; `tshark` optional):")
L.append("")
L.append("```sh")
L.append("sudo bash integration/capture-keepalived-vectors.sh")
L.append("```")
L.append("")
L.append("The script creates two network namespaces, `vipdcap-a` and `vipdcap-b`, joined by")
L.append("a veth pair (`eth0` in each; MACs 02:00:00:00:00:11 / :12, so the link-local")
L.append("addresses are the stable EUI-64 ones fe80::ff:fe00:11 / fe80::ff:fe00:12).")
L.append("Addresses: 192.0.2.11/24 + 2001:db8::11/64 in `vipdcap-a`, 192.0.2.12/24 +")
L.append("2001:db8::12/64 in `vipdcap-b`. For each configuration it runs")
L.append("`keepalived -n -P -l -D -G -f CONF -p PID -r VRRP_PID -c CHECK_PID -b BFD_PID`")
L.append("in `vipdcap-a` (`state MASTER`, private pid files in a temp dir) for a few")
L.append("seconds while `tcpdump -i eth0 'ip proto 112 or ip6 proto 112'` records in")
L.append("`vipdcap-b`, then stops keepalived with SIGTERM (which makes it send a")
L.append("priority-0 advert). Everything is removed afterwards. Python (stdlib) parses the")
L.append("pcaps, takes the first advert of each run (and the first priority-0 advert of the")
L.append("`v3-ipv4` run), recomputes both checksum forms, and writes the files below.")
L.append("")
L.append("File format: lowercase hex, 16 bytes per line separated by spaces; lines")
L.append("starting with `#` are comments. IPv4 files hold the whole IPv4 packet (IPv4")
L.append("header + VRRP message). The IPv6 file holds the VRRP message only; its IPv6")
L.append("source, destination and hop limit are listed below (needed for the checksum,")
L.append("which covers the IPv6 pseudo-header).")
L.append("")
L.append("Observed on the wire: IPv4 TTL / IPv6 hop limit 255, DSCP CS6 (TOS / traffic")
L.append("class 0xc0), IPv4 DF not set, IPv4 identification counting up from 1 per")
L.append("instance (so reruns give the same bytes), IPv6 adverts sent from the")
L.append("EUI-64 link-local address to ff02::12 (the IPv6 flow label is set by the")
L.append("kernel and is not part of the vector). Even with `state MASTER` keepalived")
L.append("2.2.7 starts in BACKUP (init) and sends its first advert only after the")
L.append("master-down timer (about 3-4 s with advert_int 1) expires.")
L.append("")
L.append("| file | version | type | VRID | priority | count | max advert int | checksum | checksum form (verified) | virtual addresses | src -> dst | TTL / hop limit |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    d = r["d"]
    interval = "%d cs" % d["interval"] if d["version"] == 3 else "%d s" % d["interval"]
    L.append("| `%s` | %d | %d (advert) | %d | %d | %d | %s | 0x%04x | %s | %s | %s -> %s | %d |" % (
        r["file"], d["version"], d["type"], d["vrid"], d["priority"], d["count"], interval,
        r["cs"]["got"], r["cs"]["form"], ", ".join(r["vips"]), r["src"], r["dst"], r["ttl"]))
L.append("")
L.append("Checksum cross-check (computed by the script for the selected advert):")
L.append("")
L.append("| file | in packet | computed with pseudo-header | computed message only | tshark (default prefs) | tshark with `vrrp.v3_checksum_as_in_v2:TRUE` |")
L.append("|---|---|---|---|---|---|")
for r in rows:
    L.append("| `%s` | 0x%04x | 0x%04x | 0x%04x | %s | %s |" % (
        r["file"], r["cs"]["got"], r["cs"]["pseudo"], r["cs"]["message_only"], r["ts"], r["ts2"]))
L.append("")
L.append("For VRRPv2 the checksum never covers a pseudo-header (RFC 3768); the \"with")
L.append("pseudo-header\" column is only shown for comparison.")
L.append("")
for r in rows:
    d = r["d"]
    extra = ""
    if d["version"] == 2:
        extra = ", auth type %d (8 bytes of zero authentication data follow the address)" % d["auth_type"]
    L.append("- `%s`: %s; %d bytes; frame %d of %d VRRP packets in the `%s` capture%s." % (
        r["file"], r["desc"], r["len"], r["frame"], r["adverts"], r["run"], extra))
for fname, desc, reason in missing:
    note = ""
    if "v3_checksum_as_v2" in reason:
        note = (" The keyword first appeared in keepalived 2.2.8; rerun this script with"
                " keepalived >= 2.2.8 to get this vector")
    L.append("- `%s` (%s): **not produced**: %s.%s" % (fname, desc, reason, note))
L.append("")
L.append("Configurations (global_defs + one vrrp_instance, all `state MASTER`, `interface eth0`):")
L.append("")
L.append("| run | vrrp_version | VRID | priority | advert_int | extra global_defs | virtual_ipaddress |")
L.append("|---|---|---|---|---|---|---|")
for run in ["v3-ipv4", "v3-ipv4-centisec", "v3-ipv4-nopseudo", "v3-ipv6", "v2-ipv4"]:
    cf = os.path.join(tmp, run + ".conf")
    if not os.path.exists(cf):
        continue
    words = {}
    extra, vips, in_global, in_vips = [], [], False, False
    for line in open(cf):
        t = line.split()
        if not t:
            continue
        if t[0] == "global_defs":
            in_global = True
        elif t[0] == "virtual_ipaddress":
            in_vips = True
        elif t[0] == "}":
            in_global = in_vips = False
        elif in_vips:
            vips.append(t[0])
        elif in_global and t[0] not in ("router_id", "vrrp_version"):
            extra.append(" ".join(t))
        words.setdefault(t[0], t[1] if len(t) > 1 else "")
    L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
        run, words.get("vrrp_version"), words.get("virtual_router_id"), words.get("priority"),
        words.get("advert_int"), " ".join(extra), ", ".join(vips)))
L.append("")
with open(os.path.join(out_dir, "README.md"), "w") as f:
    f.write("\n".join(L))
for r in rows:
    print("%-36s v%d vrid=%d prio=%d count=%d int=%d csum=0x%04x %s | tshark: %s | as_v2: %s" % (
        r["file"], r["d"]["version"], r["d"]["vrid"], r["d"]["priority"], r["d"]["count"],
        r["d"]["interval"], r["cs"]["got"], r["cs"]["form"], r["ts"], r["ts2"]))
for fname, desc, reason in missing:
    print("%-36s NOT PRODUCED: %s" % (fname, reason))
PYEOF

mkdir -p "$OUT_DIR"
"$PYTHON" "$TMP/extract.py" "$TMP" "$OUT_DIR" "$KA_VERSION" "$TSHARK"

if [[ -n "${VIPDCAP_PCAP_DIR:-}" ]]; then
    mkdir -p "$VIPDCAP_PCAP_DIR"
    cp "$TMP"/*.pcap "$TMP"/*.log "$TMP"/*.conf "$VIPDCAP_PCAP_DIR"/
    log "pcaps, logs and configs copied to $VIPDCAP_PCAP_DIR"
fi
log "vectors written to $OUT_DIR"
