#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs every crate's unit tests,
# the integration tests against a real Apache and a real php-fpm on 127.0.0.1, clippy, and
# the package tests (.deb installed and purged, .rpm inspected); rustfmt checks the format.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

# The integration tests load the module from target/debug; build it first.
cargo build --locked -p mod_fcgi_resilient
# One test at a time: they restart PHP-FPM under load on a 2-core machine.
cargo test --locked --workspace -- --test-threads=1
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings

scripts/test-packages.sh
echo "all tests passed"
