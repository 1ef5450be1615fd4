#!/usr/bin/env bash
# The shared-hosting benchmark of bench/README.md: one php-fpm master with 200 pools, 200
# Apache virtual hosts, PHP-FPM restarted under load, stock Apache against the module, and
# the helper over 500 pool files; then the module's restart again with its trace1 log (the
# thundering herd, counted: probes, wake-ups, inotify instances). Prints figures, asserts
# nothing. `--strace` adds strace -c of every Apache child (it slows them enough to change
# the figures, and caused socket errors in a run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dpkg -s strace >/dev/null 2>&1 || apt-get install -y -q --no-install-recommends strace
cargo build --release -p mod_fcgi_resilient -p fcgi-resilient-helper -p fcgi-resilient-bench
out=target/bench-shared-hosting
mkdir -p "$out"
bin=target/release/shared_hosting
"$bin" "$@" | tee "$out/results.txt"
"$bin" --only restart --variants apache+module+idempotent --log-level "warn fcgi_resilient:trace1" "$@" | tee "$out/herd.txt"
echo "written: $out/results.txt, $out/herd.txt"
