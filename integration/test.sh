#!/usr/bin/env bash
# The whole test suite, as README.md documents it: installs what the tests need when it is
# missing, then runs lints, unit tests, the simulated clusters and the lab tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
for tool in tshark:tshark keepalived:keepalived ip:iproute2 sysctl:procps dig:dnsutils tcpdump:tcpdump knotd:knot man:man-db dnsperf:dnsperf nft:nftables; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need_packages+=("${tool#*:}")
done
if [ "${#need_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: missing ${need_packages[*]} and not root to install them" >&2
        exit 1
    fi
    echo "test.sh: installing ${need_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The packages bring services (keepalived, knot): never let them start on this host's
    # own network; the tests run their own copies inside namespaces.
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
    if [ -n "$made_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: the lab tests (integration/) need root to build network namespaces; they will fail and say so" >&2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets
echo "== benchmark harnesses, smoke runs (tiny sizes; the numbers are not pass/fail here)"
VIPD_BENCH_SMOKE=1 cargo test --bench failover --bench scale --bench dns --bench stability
echo "== fuzzing the DNS request path, the VRRP receive path, the cluster file, the control protocol and the heartbeats (bounded)"
# cargo-fuzz needs the nightly toolchain; both are installed when missing.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "test.sh: installing the nightly toolchain (for cargo-fuzz)"
    rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "test.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
fuzz_seconds="${VIPD_FUZZ_SECONDS:-20}"
fuzz_work="$(mktemp -d)"
trap 'rm -rf "$fuzz_work"' EXIT
for target in answer_udp tcp_stream vrrp config control heartbeat; do
    # New inputs go to a scratch directory: the committed corpus stays the seeds. A crash or
    # an input that takes over 5 s fails the run; libFuzzer saves it in fuzz/artifacts/, and
    # it becomes a regression test (vrrp, config, control: copied into fuzz/corpus/<target>/,
    # tests/fuzz_corpus.rs replays it).
    mkdir -p "$fuzz_work/$target"
    log="$fuzz_work/$target.log"
    if ! (cd fuzz && cargo +nightly fuzz run --dev -s none "$target" "$fuzz_work/$target" "corpus/$target" \
        -- -max_total_time="$fuzz_seconds" -timeout=5 -rss_limit_mb=2048 >"$log" 2>&1); then
        tail -n 60 "$log" >&2
        echo "test.sh: fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    echo "$target: $(grep -E '^Done [0-9]+ runs' "$log" || tail -n 1 "$log")"
done
rm -rf "$fuzz_work"
trap - EXIT

# The Debian package, built and installed on this host the way an operator would, without
# ever starting vipd here: the package neither enables nor starts its unit, a temporary
# policy-rc.d forbids service starts during dpkg, the unit needs /etc/vipd/cluster.toml,
# and the package is purged again unless it was installed before.
echo "== Debian package"
if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: installing the Debian package needs root" >&2
    exit 1
fi
deb_start=$SECONDS
if ! cargo deb --version >/dev/null 2>&1; then
    # About 1 minute of compiling on 2 cores, once per machine.
    echo "test.sh: installing cargo-deb"
    cargo install cargo-deb --locked --version '^3.8' --quiet
fi
# A profile without optimisation: the package's contents, not the binary's speed, are
# under test here (about 1 minute on 2 cores). Release packages: plain `cargo deb`.
deb_profile="${VIPD_DEB_PROFILE:-deb-check}"
target_dir="${CARGO_TARGET_DIR:-target}"
cargo run --quiet --example man -- "$target_dir/$deb_profile/man"
deb=$(cargo deb --profile "$deb_profile" | tail -n 1)
[ -f "$deb" ] || { echo "test.sh: cargo deb made no package" >&2; exit 1; }
echo "built $deb ($((SECONDS - deb_start)) s)"
was_installed=""
dpkg -s vipd >/dev/null 2>&1 && was_installed=1
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
fi
cleanup_deb() {
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ -z "$was_installed" ] && dpkg --purge vipd >/dev/null 2>&1
    return 0
}
trap cleanup_deb EXIT
dpkg -i "$deb" >/dev/null
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ "$(/usr/bin/vipd --version)" = "vipd $version" ] || {
    echo "test.sh: installed vipd --version says '$(/usr/bin/vipd --version)', not 'vipd $version'" >&2
    exit 1
}
man -w vipd
man -w vipd-cleanup
man -w vipd-import-keepalived
unit=/usr/lib/systemd/system/vipd.service
[ -f "$unit" ] || { echo "test.sh: the package installed no $unit" >&2; exit 1; }
if [ -e /etc/systemd/system/multi-user.target.wants/vipd.service ]; then
    echo "test.sh: installing the package enabled vipd.service" >&2
    exit 1
fi
/usr/bin/vipd check /usr/share/doc/vipd/examples/cluster.toml --node alpha >/dev/null
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$unit"
    echo "systemd-analyze verify $unit: ok"
else
    echo "test.sh: systemd-analyze is not installed: $unit NOT verified"
fi
cleanup_deb
trap - EXIT
echo "Debian package: ok ($((SECONDS - deb_start)) s)"
