#!/usr/bin/env bash
# Measures `fcgi-resilient-helper socket-keeper` under a real systemd (systemd-nspawn): PHP-FPM as
# Debian ships it, with the keeper, and with the keeper and the drain drop-in, through Apache with
# the module Off and On and nginx; prints the table of bench/results/socket-keeper.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh nginx-light
cargo build --locked --release -p mod_fcgi_resilient -p fcgi-resilient-helper -p fcgi-resilient-bench
target/release/socket_keeper --module "$PWD/target/release/libmod_fcgi_resilient.so" \
    --helper "$PWD/target/release/fcgi-resilient-helper" "$@"
