#!/usr/bin/env bash
# Runs the benchmark of bench/README.md: installs the peers from Debian, builds, measures.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
need=()
for pkg in nginx-light haproxy caddy strace apache2-utils gnuplot-nox; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi
cargo build --locked --release -p mod_fcgi_resilient -p fcgi-resilient-helper -p fcgi-resilient-bench
out=target/bench
args=("$@")
for ((i = 0; i + 1 < ${#args[@]}; i++)); do
    [[ ${args[i]} == --out ]] && out=${args[i + 1]}
done
target/release/fcgi-resilient-bench --module "$PWD/target/release/libmod_fcgi_resilient.so" \
    --helper "$PWD/target/release/fcgi-resilient-helper" "$@"
gnuplot -e "dir='$out'" bench/plot.gp && echo "plotted: $out/timeline.png"
bench/syscalls.sh "$PWD/target/release/libmod_fcgi_resilient.so"
