#!/usr/bin/env bash
# Counts the CPU instructions Apache spends per PHP request with FcgiResilient Off and On,
# under valgrind's callgrind: instruction counts do not depend on what else the machine is
# doing, unlike requests per second on a shared machine. Apache runs as one process (-X),
# counted from start to exit once with N and once with 2N requests per setting: the
# difference, divided by N, is what one request costs, start-up and shutdown cancelled out.
set -euo pipefail
module=$(realpath "${1:?usage: instructions.sh /path/to/libmod_fcgi_resilient.so [requests]}")
requests=${2:-500}
command -v valgrind >/dev/null || { echo "instructions.sh needs valgrind (apt-get install valgrind)"; exit 1; }
source "$(dirname "$0")/php-site.sh"
dir=$(mktemp -d /tmp/fcgi-resilient-instructions.XXXXXX)
# Apache drops to www-data: callgrind writes its output as that user.
chmod 777 "$dir"
fpm_pid=
trap '[ -n "$fpm_pid" ] && kill "$fpm_pid" 2>/dev/null; pkill -f "callgrind.*$dir" || true; sleep 1; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
port=$(free_port)
start_php_fpm "$dir"
sleep 1
count() { # mode requests -> total instructions of one Apache run
    local mode=$1 n=$2 out="$dir/callgrind.$1.$2"
    write_httpd_conf "$dir" "$port" "$module" "$mode" </dev/null
    # Made now and writable by all: callgrind writes it when Apache exits, as www-data.
    touch "$out" && chmod 666 "$out"
    valgrind --tool=callgrind --vgdb=no --callgrind-out-file="$out" /usr/sbin/apache2 -X -f "$dir/httpd.conf" \
        >"$dir/valgrind.log" 2>&1 &
    local grind=$!
    for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.3; done
    ab -q -n "$n" -c 1 "http://127.0.0.1:$port/index.php" | grep -qE "^Failed requests: +0" \
        || { echo "requests failed:"; cat "$dir/valgrind.log" "$dir/error.log"; exit 1; } >&2
    kill -TERM "$grind"; wait "$grind" 2>/dev/null || true
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
}

n=$requests
for mode in Off On; do
    once=$(count "$mode" "$n")
    twice=$(count "$mode" $((2 * n)))
    echo "FcgiResilient $mode: $(( (twice - once) / n )) instructions per request ($n and $((2 * n)) requests: $once, $twice)"
done
