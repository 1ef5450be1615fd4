#!/usr/bin/env bash
# Counts the system calls of one Apache child (event MPM, one child) serving 2000 requests
# for a PHP script through php-fpm, with FcgiResilient Off and On. Identical per-request
# counts show that the module adds no system call while the backend is healthy.
set -euo pipefail
module=$(realpath "${1:?usage: syscalls.sh /path/to/libmod_fcgi_resilient.so}")
source "$(dirname "$0")/php-site.sh"
dir=$(mktemp -d /tmp/fcgi-resilient-syscalls.XXXXXX)
chmod 755 "$dir"
trap 'kill $(cat "$dir"/*.pid 2>/dev/null) 2>/dev/null || true; sleep 1; rm -rf "$dir"' EXIT
port=$(free_port)
start_php_fpm "$dir"
for mode in Off On; do
    write_httpd_conf "$dir" "$port" "$module" "$mode" <<CONF
StartServers 1
ServerLimit 1
ThreadLimit 8
ThreadsPerChild 8
MinSpareThreads 1
MaxSpareThreads 8
MaxRequestWorkers 8
CONF
    setsid /usr/sbin/apache2 -f "$dir/httpd.conf" -DFOREGROUND >/dev/null 2>&1 &
    sleep 1.5
    child=$(pgrep -P "$(cat "$dir/httpd.pid")" | head -1)
    curl -s -o /dev/null "http://127.0.0.1:$port/index.php"
    strace -f -c -o "$dir/strace.$mode" -p "$child" 2>/dev/null &
    tracer=$!
    sleep 1
    ab -q -n 2000 -c 1 "http://127.0.0.1:$port/index.php" | grep -E "^(Complete|Failed) requests"
    sleep 0.5; kill -INT "$tracer"; wait "$tracer" || true
    kill "$(cat "$dir/httpd.pid")"; sleep 1
done
echo "system calls per request over 2000 requests (one child, all its threads):"
printf "%-14s %8s %8s\n" syscall Off On
join -a1 -a2 -e0 -o 0,1.2,2.2 \
    <(awk 'NR>2 && $NF!="total" && NF>=5 {print $NF, $4}' "$dir/strace.Off" | sort) \
    <(awk 'NR>2 && $NF!="total" && NF>=5 {print $NF, $4}' "$dir/strace.On" | sort) |
    awk '$1 !~ /^-/ {printf "%-14s %8.2f %8.2f\n", $1, $2/2000, $3/2000}'
