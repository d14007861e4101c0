#!/usr/bin/env bash
# The whole test suite, as README.md documents it: installs what the tests need when it is
# missing, then runs lints, unit tests, the simulated clusters and the lab tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
for tool in tshark:tshark keepalived:keepalived ip:iproute2 dig:dnsutils tcpdump:tcpdump; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need_packages+=("${tool#*:}")
done
if [ "${#need_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "test.sh: missing ${need_packages[*]} and not root to install them" >&2
        exit 1
    fi
    echo "test.sh: installing ${need_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --all-targets
