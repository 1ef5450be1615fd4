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
dir=$(mktemp -d /tmp/fcgi-resilient-instructions.XXXXXX)
# Apache drops to www-data: callgrind writes its output as that user.
chmod 777 "$dir"; mkdir -m 755 "$dir/www"
fpm_pid=
trap '[ -n "$fpm_pid" ] && kill "$fpm_pid" 2>/dev/null; pkill -f "callgrind.*$dir" || true; sleep 1; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
echo '<?php echo "ok\n";' > "$dir/www/index.php"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/fpm.conf" <<CONF
[global]
pid = $dir/fpm.pid
error_log = $dir/fpm.log
daemonize = no
[www]
user = www-data
group = www-data
listen = $dir/php.sock
listen.mode = 0666
pm = static
pm.max_children = 2
CONF
fpm=$(ls /usr/sbin/php-fpm* | sort | tail -1)
setsid "$fpm" -n -y "$dir/fpm.conf" -F >/dev/null 2>&1 &
fpm_pid=$!
sleep 1
count() { # mode requests -> total instructions of one Apache run
    local mode=$1 n=$2 out="$dir/callgrind.$1.$2"
    cat > "$dir/httpd.conf" <<CONF
ServerRoot $dir
ServerName localhost
Listen 127.0.0.1:$port
PidFile $dir/httpd.pid
ErrorLog $dir/error.log
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so
LoadModule fcgi_resilient_module $module
FcgiResilient $mode
User www-data
Group www-data
DocumentRoot $dir/www
<Directory $dir/www>
    AllowOverride None
    Require all granted
</Directory>
<FilesMatch "\.php$">
    SetHandler "proxy:unix:$dir/php.sock|fcgi://localhost"
</FilesMatch>
CONF
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
