#!/usr/bin/env bash
# The README's demo: Apache + PHP-FPM on 127.0.0.1, 32 clients, PHP-FPM restarted (and
# restarted with a 2 s gap, and reloaded) under load; prints failed requests for stock
# Apache (module Off) and with the module On, measured in the same run. Arguments are passed
# to the bench after the demo's own and win over them (.ci/run: --happy-seconds 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Everything the bench runs: the module, and the helper its helper-restart event stops PHP-FPM with.
cargo build --locked --release -p mod_fcgi_resilient -p fcgi-resilient-helper -p fcgi-resilient-bench
target/release/fcgi-resilient-bench \
    --module "$PWD/target/release/libmod_fcgi_resilient.so" \
    --helper "$PWD/target/release/fcgi-resilient-helper" \
    --front-ends apache-stock,apache+module,apache+module+idempotent \
    --clients 32 --seconds 5 --happy-seconds 3 \
    --out target/demo "$@"
