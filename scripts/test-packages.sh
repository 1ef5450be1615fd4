#!/usr/bin/env bash
# Package tests (part of scripts/test.sh). Debian 12, as root. Builds both packages with
# scripts/package.sh (skip with --no-build), then:
#   rpm: file list, Requires, config flags (rpm -qlp / -qp --requires / --configfiles),
#     %license files, %changelog, License, Release, Description;
#   deb: control fields, file list, md5sums, conffiles, DEP-5 copyright against cargo tree,
#     the man page rendered without groff warnings;
#   lintian -I --pedantic and rpmlint: every error and warning must be overridden, with a reason,
#     in packaging/lint-overrides.txt;
#   the .deb installed on this machine's stock apache2 (apt-get install ./…deb): dpkg --verify,
#   man fcgi-resilient-helper, enabled with
#   proxy and proxy_fcgi, configtest, LoadModule order (fcgi_resilient.load sorts before
#   proxy.load), the module's own message when proxy_fcgi/proxy are missing, Apache + a
#   PHP-FPM pool serving while PHP-FPM is stopped (SIGTERM) and started (every request 200),
#   then apt-get remove and purge with Apache still passing configtest and serving.
# Servers started here listen on 127.0.0.1 only, inside a network namespace of their own when
# `unshare --net` works. The machine's Apache configuration is restored at the end (ports.conf,
# mods-enabled, conf-enabled, /var/lib/apache2); the maintainer scripts are kept from
# starting the machine's Apache with policy-rc.d. Every check prints PASS or FAIL; the exit
# status is non-zero if one failed.
# SC2317: functions run by trap or through check(); SC2016: bash -c scripts get $1 as argument.
# shellcheck disable=SC2317,SC2016
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."

pkg=libapache2-mod-fcgi-resilient
failures=0
pass() { echo "PASS: $*"; }
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
# check DESCRIPTION COMMAND...: PASS if the command succeeds.
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
contains() { grep -qF -- "$2" <<<"$1"; }
lacks() { ! grep -qiF -- "$2" <<<"$1"; }
same_lines() {
    if [[ "$1" == "$2" ]]; then return 0; fi
    diff <(echo "$2") <(echo "$1") | sed 's/^/    expected<  >got: /' >&2
    return 1
}

# ---------------------------------------------------------------------------------------------
# Live part: runs as its own process (in a network namespace when possible), see main below.
# ---------------------------------------------------------------------------------------------
live() {
    local deb=$1 port=$2 fpm
    # Globals, not locals: the EXIT trap (cleanup) runs after this function has returned.
    work="" fpm_pid="" apache_started="" created_run_php="" policy_backup=""
    sock=/run/php/fcgi-resilient-pkgtest.sock
    snippet=/etc/apache2/conf-enabled/zz-fcgi-resilient-pkgtest.conf
    pidfile=/var/run/apache2/apache2.pid
    fpm=$(compgen -G '/usr/sbin/php-fpm*' | sort -V | tail -n 1 || true)
    if [[ -z "$fpm" ]]; then
        fail "no /usr/sbin/php-fpm* (install php-fpm)"
        return 1
    fi
    if [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        fail "the machine's Apache is running ($pidfile): stop it before the package tests"
        return 1
    fi

    work=$(mktemp -d /tmp/fcgi-resilient-pkgtest.XXXXXX)
    chmod 755 "$work"
    mkdir -p "$work/backup" "$work/www"

    # --- state to restore -------------------------------------------------------------------
    cp -a /etc/apache2/ports.conf /etc/apache2/mods-enabled /etc/apache2/conf-enabled "$work/backup/"
    [[ -d /var/lib/apache2 ]] && cp -a /var/lib/apache2 "$work/backup/var-lib-apache2"
    if [[ -e /usr/sbin/policy-rc.d ]]; then
        policy_backup="$work/backup/policy-rc.d"
        cp -a /usr/sbin/policy-rc.d "$policy_backup"
    fi
    # The maintainer scripts restart Apache (invoke-rc.d) after enabling/disabling the module,
    # as Debian's own modules do; here that would start the machine's Apache on *:80.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    [[ -d /run/php ]] || created_run_php=1

    apt() { DEBIAN_FRONTEND=noninteractive apt-get -y -q "$@" >>"$work/apt.log" 2>&1; }
    stop_apache() {
        [[ -n "$apache_started" ]] || return 0
        apachectl -k stop >/dev/null 2>&1 || true
        local i pid
        pid=$(cat "$pidfile" 2>/dev/null || true)
        for ((i = 0; i < 100; i++)); do
            if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then break; fi
            sleep 0.1
        done
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        apache_started=""
    }
    stop_fpm() {
        [[ -n "$fpm_pid" ]] || return 0
        kill -TERM "$fpm_pid" 2>/dev/null || true
        wait "$fpm_pid" 2>/dev/null || true
        fpm_pid=""
    }
    cleanup() {
        set +e
        stop_apache
        stop_fpm
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'installed\|config-files'; then
            apt purge "$pkg"
        fi
        cp -a "$work/backup/ports.conf" /etc/apache2/ports.conf
        rm -rf /etc/apache2/mods-enabled /etc/apache2/conf-enabled
        cp -a "$work/backup/mods-enabled" "$work/backup/conf-enabled" /etc/apache2/
        if [[ -d "$work/backup/var-lib-apache2" ]]; then
            rm -rf /var/lib/apache2
            cp -a "$work/backup/var-lib-apache2" /var/lib/apache2
        fi
        if [[ -n "$policy_backup" ]]; then cp -a "$policy_backup" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi
        rm -f "$sock"
        [[ -n "$created_run_php" ]] && rmdir /run/php 2>/dev/null
        if ((failures)); then
            echo "logs kept in $work (apt.log, php-fpm.log, load.*); Apache's: /var/log/apache2/error.log"
        else
            rm -rf "$work"
        fi
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    # --- test fixtures: 127.0.0.1 only, a PHP-FPM pool of our own, *.php routed to it -------
    echo "Listen 127.0.0.1:$port" >/etc/apache2/ports.conf
    printf '<?php usleep(20000); echo "ok\\n";\n' >"$work/www/index.php"
    chmod 644 "$work/www/index.php"
    # FcgiResilientRetryIdempotent On: PHP-FPM is stopped with SIGTERM (as `systemctl stop`
    # does), which cuts the requests it is running; those GETs are repeated by the module.
    # Requests arriving while it is down are the ones the module waits out in any case.
    cat >"$snippet" <<EOF
# Written by scripts/test-packages.sh, removed at its end.
ServerName 127.0.0.1
Alias /pkgtest/ $work/www/
<Directory $work/www>
    Require all granted
    <FilesMatch "\\.php\$">
        SetHandler "proxy:unix:$sock|fcgi://localhost"
    </FilesMatch>
</Directory>
<IfModule mod_fcgi_resilient.c>
    FcgiResilientRetryIdempotent On
</IfModule>
EOF
    cat >"$work/php-fpm.conf" <<EOF
[global]
pid = $work/php-fpm.pid
error_log = $work/php-fpm.log
daemonize = no

[pkgtest]
user = www-data
group = www-data
listen = $sock
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
listen.backlog = 511
pm = static
pm.max_children = 8
EOF
    mkdir -p /run/php
    local url="http://127.0.0.1:$port/pkgtest/index.php"

    start_fpm() {
        "$fpm" -n -y "$work/php-fpm.conf" -F >>"$work/php-fpm.out" 2>&1 &
        fpm_pid=$!
        local i
        for ((i = 0; i < 100; i++)); do
            [[ -S "$sock" ]] && return 0
            sleep 0.05
        done
        return 1
    }
    start_apache() {
        apachectl start >>"$work/apachectl.out" 2>&1 || return 1
        apache_started=1
        local i
        for ((i = 0; i < 100; i++)); do
            curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/" && return 0
            sleep 0.1
        done
        return 1
    }
    http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$1" || true; }
    # restart_under_load: 16 clients x 60 GETs while PHP-FPM is stopped and started. Sets
    # `bad` to the number of requests that did not answer 200 (not in a subshell: it restarts
    # PHP-FPM, whose pid this shell keeps).
    restart_under_load() {
        local clients=16 requests=60 i pids=()
        rm -f "$work"/load.*
        for ((i = 0; i < clients; i++)); do
            (
                for ((n = 0; n < requests; n++)); do
                    curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 "$url" || true
                done >"$work/load.$i"
            ) &
            pids+=($!)
        done
        sleep 0.4
        stop_fpm
        sleep 0.5
        start_fpm || echo "php-fpm did not come back" >&2
        for i in "${pids[@]}"; do wait "$i" || true; done
        bad=$(cat "$work"/load.* | grep -cv '^200$' || true)
        local total
        total=$(cat "$work"/load.* | wc -l)
        if ((total != clients * requests)); then bad=$((bad + clients * requests - total)); fi
    }

    # --- install ----------------------------------------------------------------------------
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'installed\|config-files'; then
        echo "note: $pkg was installed before the test; purging it first"
        apt purge "$pkg"
    fi
    check "apt-get install $deb" apt install "$deb"
    check "module installed in /usr/lib/apache2/modules" test -f /usr/lib/apache2/modules/mod_fcgi_resilient.so
    check "dpkg --verify $pkg: every file matches the package's md5sums" \
        bash -c 'out=$(dpkg --verify "$1" 2>&1) && [[ -z $out ]] || { echo "$out" >&2; exit 1; }' _ "$pkg"
    # Minimal images (Docker's debian) may tell dpkg not to install man pages.
    local man_excluded
    man_excluded=$(grep -hs '^path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg.d/* || true)
    if [[ -n "$man_excluded" ]]; then
        echo "note: /etc/dpkg/dpkg.cfg.d excludes man pages on this machine ($man_excluded):" \
            "not installed; the page in the .deb was checked with man -l instead"
    else
        check "man fcgi-resilient-helper (installed page)" \
            bash -c 'MANWIDTH=80 man fcgi-resilient-helper 2>/dev/null | grep -q "reload-and-wait"'
        check "man 5 mod_fcgi_resilient (installed page)" \
            bash -c 'MANWIDTH=80 man 5 mod_fcgi_resilient 2>/dev/null | grep -q "FcgiResilientTimeout"'
    fi
    check "postinst enabled fcgi_resilient (apache2_invoke enmod)" a2query -q -m fcgi_resilient
    check "postinst enabled proxy and proxy_fcgi (a2enmod Depends)" \
        bash -c 'a2query -q -m proxy && a2query -q -m proxy_fcgi'
    # a2enmod by hand, from nothing: the .load's "# Depends:" brings proxy and proxy_fcgi.
    a2dismod -q -f fcgi_resilient proxy_fcgi proxy >/dev/null 2>&1 || true
    local out
    out=$(a2enmod fcgi_resilient 2>&1) || true
    check "a2enmod fcgi_resilient enables fcgi_resilient, proxy, proxy_fcgi" \
        bash -c 'a2query -q -m fcgi_resilient && a2query -q -m proxy && a2query -q -m proxy_fcgi'
    out=$(apachectl configtest 2>&1) || true
    check "apachectl configtest (stock modules + fcgi_resilient)" contains "$out" "Syntax OK"

    # --- LoadModule order ---------------------------------------------------------------------
    local loads
    loads=$(cd /etc/apache2/mods-enabled && printf '%s\n' *.load | LC_ALL=C sort)
    check "mods-enabled: fcgi_resilient.load sorts before proxy.load" \
        bash -c '[[ $(grep -n "^fcgi_resilient.load$" <<<"$1" | cut -d: -f1) -lt $(grep -n "^proxy.load$" <<<"$1" | cut -d: -f1) ]]' _ "$loads"
    cp -a /etc/apache2/mods-enabled "$work/mods-enabled.installed"
    # More of what admins enable next to it, proxy modules first among them.
    a2enmod -q proxy_http proxy_balancer lbmethod_byrequests proxy_wstunnel proxy_http2 \
        headers rewrite ssl http2 expires >/dev/null 2>&1 || true
    out=$(apachectl configtest 2>&1) || true
    check "apachectl configtest with proxy_http, proxy_balancer, ssl, http2, rewrite ... also enabled" \
        contains "$out" "Syntax OK"
    rm -rf /etc/apache2/mods-enabled && cp -a "$work/mods-enabled.installed" /etc/apache2/mods-enabled
    # An admin removing proxy_fcgi's link by hand (a2dismod proxy_fcgi disables fcgi_resilient
    # with it): httpd stops with the module's message, not dlopen's.
    rm -f /etc/apache2/mods-enabled/proxy_fcgi.load
    if out=$(apachectl configtest 2>&1); then fail "configtest passes without proxy_fcgi"; fi
    echo "$out" | grep -v AH00558 | sed 's/^/    | /'
    check "without proxy_fcgi: configtest names what to enable" \
        bash -c 'grep -qF "mod_fcgi_resilient needs mod_proxy_fcgi" <<<"$1" && grep -qF "a2enmod proxy_fcgi" <<<"$1"' _ "$out"
    check "without proxy_fcgi: no dlopen error" \
        bash -c '! grep -qiE "undefined symbol|Cannot load" <<<"$1"' _ "$out"
    rm -f /etc/apache2/mods-enabled/proxy.load /etc/apache2/mods-enabled/proxy.conf
    if out=$(apachectl configtest 2>&1); then fail "configtest passes without proxy"; fi
    echo "$out" | grep -v AH00558 | sed 's/^/    | /'
    check "without proxy and proxy_fcgi: configtest names what to enable" \
        bash -c 'grep -qF "mod_fcgi_resilient needs mod_proxy and mod_proxy_fcgi" <<<"$1" && grep -qF "a2enmod proxy_fcgi" <<<"$1"' _ "$out"
    check "without proxy: no dlopen error" bash -c '! grep -qiE "undefined symbol|Cannot load" <<<"$1"' _ "$out"
    a2enmod -q fcgi_resilient >/dev/null 2>&1 || true
    out=$(apachectl configtest 2>&1) || true
    check "a2enmod fcgi_resilient repairs it: configtest" contains "$out" "Syntax OK"

    # --- Apache + PHP-FPM, PHP-FPM restarted under load -------------------------------------
    check "php-fpm pool started ($fpm)" start_fpm
    check "apachectl start (127.0.0.1:$port)" start_apache
    check "PHP through mod_proxy_fcgi: 200" test "$(http_code "$url")" = 200
    check "status page /fcgi-resilient-status?auto (fcgi_resilient.conf): 200" \
        test "$(http_code "http://127.0.0.1:$port/fcgi-resilient-status?auto")" = 200
    local bad
    restart_under_load
    check "PHP-FPM stopped (SIGTERM) and started under load, module On: $bad of 960 requests not 200" test "$bad" = 0
    stop_apache

    # Leaves Apache running.
    apache_still_works() {
        local when=$1 out
        out=$(apachectl configtest 2>&1) || true
        check "$when: apachectl configtest" contains "$out" "Syntax OK"
        check "$when: apachectl start" start_apache
        check "$when: PHP through mod_proxy_fcgi: 200" test "$(http_code "$url")" = 200
    }

    # --- remove --------------------------------------------------------------------------------
    check "apt-get remove $pkg" apt remove "$pkg"
    check "after remove: fcgi_resilient disabled" bash -c '! a2query -q -m fcgi_resilient'
    check "after remove: module file gone, conffiles kept" \
        bash -c '[[ ! -e /usr/lib/apache2/modules/mod_fcgi_resilient.so && -f /etc/apache2/mods-available/fcgi_resilient.load ]]'
    apache_still_works "after remove"
    # The same restart without the module: shows the check above can fail.
    restart_under_load
    check "control, module removed: $bad of 960 requests not 200 (expected > 0)" test "$bad" -gt 0
    stop_apache

    # --- purge ---------------------------------------------------------------------------------
    check "apt-get purge $pkg" apt purge "$pkg"
    check "after purge: conffiles and a2enmod state gone" \
        bash -c '[[ ! -e /etc/apache2/mods-available/fcgi_resilient.load && ! -e /etc/apache2/mods-available/fcgi_resilient.conf ]] && ! compgen -G "/var/lib/apache2/module/*/fcgi_resilient" >/dev/null'
    apache_still_works "after purge"
    stop_apache
    stop_fpm

    ((failures == 0))
}

if [[ "${1:-}" == "--live" ]]; then
    # Inside the network namespace (or not, when unshare is unavailable).
    if [[ "${3:-}" == netns ]]; then ip link set lo up; fi
    live "$2" "${4:-8080}"
    exit
fi

# ---------------------------------------------------------------------------------------------
# Main: build, inspect the packages, then run the live part.
# ---------------------------------------------------------------------------------------------
started=$SECONDS
if ((EUID != 0)); then
    echo "FAIL: scripts/test-packages.sh installs packages and runs Apache: run it as root" >&2
    exit 1
fi
if [[ "${1:-}" == "--no-build" ]]; then
    scripts/install-deps.sh iproute2 # ip, ss
else
    scripts/install-deps.sh iproute2
    scripts/package.sh
fi
target_dir="${CARGO_TARGET_DIR:-target}"
debs=("$target_dir"/debian/"$pkg"_*.deb)
rpms=("$target_dir"/rpm/mod_fcgi_resilient-*.rpm)
if [[ ${#debs[@]} -ne 1 || ! -f "${debs[0]}" || ${#rpms[@]} -ne 1 || ! -f "${rpms[0]}" ]]; then
    echo "FAIL: expected one .deb in $target_dir/debian and one .rpm in $target_dir/rpm" \
        "(scripts/package.sh): ${debs[*]} ${rpms[*]}"
    exit 1
fi
deb=$(realpath "${debs[0]}")
rpm_file=${rpms[0]}
mmn=$(awk '$1 == "#define" && $2 == "MODULE_MAGIC_NUMBER_MAJOR" { print $3 }' "$(apxs -q INCLUDEDIR)/ap_mmn.h")
# The headers' httpd version: the oldest httpd the built module runs in (it refuses older ones).
httpd_version=$(awk '$1 == "#define" && $2 ~ /^AP_SERVER_(MAJORVERSION|MINORVERSION|PATCHLEVEL)_NUMBER$/ { n[$2] = $3 }
    END { print n["AP_SERVER_MAJORVERSION_NUMBER"] "." n["AP_SERVER_MINORVERSION_NUMBER"] "." n["AP_SERVER_PATCHLEVEL_NUMBER"] }' \
    "$(apxs -q INCLUDEDIR)/ap_release.h")
echo "packages: $deb $rpm_file (Apache API $mmn, httpd $httpd_version headers)"

# --- rpm ---------------------------------------------------------------------------------------
check "rpm: file list (rpm -qlp)" same_lines "$(rpm -qlp "$rpm_file")" "/etc/httpd/conf.modules.d/10-fcgi_resilient.conf
/usr/lib64/httpd/modules/mod_fcgi_resilient.so
/usr/sbin/fcgi-resilient-helper
/usr/share/doc/mod_fcgi_resilient
/usr/share/doc/mod_fcgi_resilient/README.md
/usr/share/doc/mod_fcgi_resilient/examples
/usr/share/doc/mod_fcgi_resilient/examples/php-fpm-tcp.conf
/usr/share/doc/mod_fcgi_resilient/examples/php-fpm-unix-socket.conf
/usr/share/doc/mod_fcgi_resilient/helper.md
/usr/share/doc/mod_fcgi_resilient/mod_fcgi_resilient.md
/usr/share/doc/mod_fcgi_resilient/packaging.md
/usr/share/fcgi-resilient-helper
/usr/share/fcgi-resilient-helper/systemd
/usr/share/fcgi-resilient-helper/systemd/php-fpm.service.d
/usr/share/fcgi-resilient-helper/systemd/php-fpm.service.d/fcgi-resilient.conf
/usr/share/fcgi-resilient-helper/tmpfiles.d
/usr/share/fcgi-resilient-helper/tmpfiles.d/fcgi-resilient.conf
/usr/share/licenses/mod_fcgi_resilient
/usr/share/licenses/mod_fcgi_resilient/LICENSE
/usr/share/licenses/mod_fcgi_resilient/LICENSE.dependencies
/usr/share/man/man5/mod_fcgi_resilient.5.gz
/usr/share/man/man8/fcgi-resilient-helper.8.gz"
requires=$(rpm -qp --requires "$rpm_file")
check "rpm: Requires httpd >= $httpd_version" grep -qxF "httpd >= $httpd_version" <<<"$requires"
check "rpm: Requires httpd-mmn = ${mmn}<isa>" grep -qE "^httpd-mmn = ${mmn}[a-z0-9_]+$" <<<"$requires"
check "rpm: --configfiles lists 10-fcgi_resilient.conf" \
    grep -qx /etc/httpd/conf.modules.d/10-fcgi_resilient.conf <<<"$(rpm -qp --configfiles "$rpm_file")"
# %config(noreplace) is FILEFLAGS "cn"; docs are "d"; nothing else may be a config file.
flags=$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file" | grep -vE '^(d|l) ' | sed 's/^ /- /')
check "rpm: only 10-fcgi_resilient.conf is config, %config(noreplace)" same_lines \
    "$(grep -v '^- ' <<<"$flags")" "cn /etc/httpd/conf.modules.d/10-fcgi_resilient.conf"
check "rpm: binaries mode 0755" same_lines \
    "$(rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm_file" | grep -E '\.so$|/sbin/')" \
    "-rwxr-xr-x /usr/lib64/httpd/modules/mod_fcgi_resilient.so
-rwxr-xr-x /usr/sbin/fcgi-resilient-helper"
check "rpm: 10-fcgi_resilient.conf loads modules/mod_fcgi_resilient.so" \
    grep -q '^LoadModule fcgi_resilient_module modules/mod_fcgi_resilient.so' httpd-conf/rhel/10-fcgi_resilient.conf
check "rpm: %license LICENSE and LICENSE.dependencies" same_lines \
    "$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file" | grep '^l ')" \
    "l /usr/share/licenses/mod_fcgi_resilient/LICENSE
l /usr/share/licenses/mod_fcgi_resilient/LICENSE.dependencies"
check "rpm: %changelog" test -n "$(rpm -qp --changelog "$rpm_file")"
check "rpm: License names the linked crates' licences ($(rpm -qp --qf '%{LICENSE}' "$rpm_file"))" \
    bash -c '[[ $1 == Apache-2.0\ AND* && $1 == *MIT* ]]' _ "$(rpm -qp --qf '%{LICENSE}' "$rpm_file")"
check "rpm: Release ends in %{?dist} (spec)" grep -qE '^Release: +[0-9]+%\{\?dist\}$' packaging/rpm/mod_fcgi_resilient.spec
check "rpm: Description is not the Summary" \
    bash -c '[[ $(rpm -qp --qf "%{DESCRIPTION}" "$1" | wc -l) -gt 3 ]]' _ "$rpm_file"

# --- deb (static) ------------------------------------------------------------------------------
check "deb: Package $pkg" test "$(dpkg-deb -f "$deb" Package)" = "$pkg"
depends=$(dpkg-deb -f "$deb" Depends)
check "deb: Depends apache2, apache2-api-$mmn ($depends)" \
    bash -c 'grep -qE "(^|, )apache2(,|$)" <<<"$1" && grep -qF "apache2-api-$2" <<<"$1"' _ "$depends" "$mmn"
check "deb: Depends apache2-bin (>= $httpd_version), the headers' version ($depends)" \
    grep -qF "apache2-bin (>= $httpd_version)" <<<"$depends"
check "deb: apache2-api-$mmn is provided by the installed apache2-bin" \
    bash -c 'dpkg-query -W -f="\${Provides}" apache2-bin | grep -qF "apache2-api-$1"' _ "$mmn"
check "deb: file list (dpkg -c)" same_lines "$(dpkg -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./|/|' | LC_ALL=C sort)" \
    "/etc/apache2/mods-available/fcgi_resilient.conf
/etc/apache2/mods-available/fcgi_resilient.load
/usr/lib/apache2/modules/mod_fcgi_resilient.so
/usr/sbin/fcgi-resilient-helper
/usr/share/doc/$pkg/README.Debian
/usr/share/doc/$pkg/README.md
/usr/share/doc/$pkg/changelog.Debian.gz
/usr/share/doc/$pkg/copyright
/usr/share/doc/$pkg/examples/php-fpm-tcp.conf
/usr/share/doc/$pkg/examples/php-fpm-unix-socket.conf
/usr/share/doc/$pkg/helper.md
/usr/share/doc/$pkg/mod_fcgi_resilient.md
/usr/share/doc/$pkg/packaging.md
/usr/share/fcgi-resilient-helper/systemd/php-fpm.service.d/fcgi-resilient.conf
/usr/share/fcgi-resilient-helper/tmpfiles.d/fcgi-resilient.conf
/usr/share/man/man5/mod_fcgi_resilient.5.gz
/usr/share/man/man8/fcgi-resilient-helper.8.gz"
check "deb: md5sums lists every file" same_lines \
    "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./md5sums | awk '{ print "/" $2 }' | LC_ALL=C sort)" \
    "$(dpkg -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./|/|' | LC_ALL=C sort)"
# The crates linked into the binaries, as cargo tree (not the generator's own graph walk) sees them:
# not proc-macros (clap_derive and syn & co. run in the compiler), not the workspace's own crates
# (the project's own copyright covers them).
linked=$(cargo tree --locked -e normal,no-proc-macro --prefix none -f '{p}' -p mod_fcgi_resilient -p fcgi-resilient-helper |
    awk '$1 != "mod_fcgi_resilient" && $1 != "fcgi-resilient-helper" && $1 != "fcgi-resilient-common" && NF {
        sub(/^v/, "", $2); print $1 "-" $2 }' | LC_ALL=C sort -u)
copyright=$(dpkg-deb --fsys-tarfile "$deb" | tar -xOf - "./usr/share/doc/$pkg/copyright")
check "deb: copyright is machine-readable (DEP-5)" \
    contains "$copyright" "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
check "deb: copyright has a Files: paragraph per linked crate ($(echo $linked))" same_lines \
    "$(sed -n 's|^Files: cargo-registry/\(.*\)/\*$|\1|p' <<<"$copyright" | LC_ALL=C sort)" "$linked"
check "deb: copyright carries the MIT notice of nix (MIT only)" \
    bash -c 'grep -q "^Copyright: .*nix-rust" <<<"$1" && grep -q "^License: MIT$" <<<"$1" && grep -q "Permission is hereby granted" <<<"$1"' _ "$copyright"
check "no example.invalid in the packages' metadata or documents" \
    bash -c '! { dpkg-deb -I "$1"; rpm -qpi "$2"; dpkg-deb --fsys-tarfile "$1" | tar -xOf - --wildcards "./usr/share/doc/*" "./usr/share/man/*"; } 2>/dev/null | zcat -f | grep -q example.invalid' _ "$deb" "$rpm_file"
man_tmp=$(mktemp)
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/share/man/man8/fcgi-resilient-helper.8.gz >"$man_tmp"
check "deb: fcgi-resilient-helper.8.gz renders without groff warnings and documents reload-and-wait" \
    bash -c 'out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null); [[ -z $out ]] || { echo "$out" >&2; exit 1; }; LC_ALL=C.UTF-8 man -l "$1" 2>/dev/null | grep -q "reload-and-wait"' _ "$man_tmp"
rm -f "$man_tmp"

# --- lint ----------------------------------------------------------------------------------------
# lint TOOL OUTPUT: PASS if every error and warning in OUTPUT is overridden, with a reason, in
# packaging/lint-overrides.txt, and every override of TOOL still matches something.
overrides=packaging/lint-overrides.txt
lint() {
    local tool=$1 output=$2 line severity tag bad=0
    local -A seen=()
    while IFS= read -r line; do
        case $tool in
            lintian) [[ $line =~ ^([EWIPX]):\ [^:\ ]+:\ ([^ ]+) ]] || continue ;;
            rpmlint) [[ $line =~ ^[^:\ ]+:\ ([EW]):\ ([^ ]+) ]] || continue ;;
        esac
        severity=${BASH_REMATCH[1]} tag=${BASH_REMATCH[2]}
        seen[$tag]=1
        if grep -qE "^$tool $tag -- " "$overrides"; then
            echo "    overridden: $line"
        elif [[ $severity == [EW] ]]; then
            echo "    NOT OVERRIDDEN: $line"
            bad=1
        else
            echo "    informational: $line"
        fi
    done <<<"$output"
    for tag in $(awk -v tool="$tool" '$1 == tool { print $2 }' "$overrides"); do
        if [[ -z "${seen[$tag]:-}" ]]; then
            echo "    stale override (matches nothing, remove it): $tool $tag"
            bad=1
        fi
    done
    ((bad == 0))
}
check "$overrides: every line is \"lintian|rpmlint TAG -- reason\"" \
    bash -c '! grep -vE "^(#|$|(lintian|rpmlint) [a-z0-9-]+ -- .{20,})" "$1"' _ "$overrides"
# --suppress-tags-from-file would hide findings; the overrides are applied by lint() instead.
lintian_out=$(lintian -I --pedantic "$deb" 2>/dev/null || true)
check "lintian -I --pedantic: no error or warning outside $overrides" lint lintian "$lintian_out"
rpmlint_out=$(rpmlint -c packaging/rpmlint.toml "$rpm_file" 2>/dev/null || true)
check "rpmlint: no error or warning outside $overrides" lint rpmlint "$rpmlint_out"

check "deb: conffiles are the .load and .conf" same_lines \
    "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles | LC_ALL=C sort)" \
    "/etc/apache2/mods-available/fcgi_resilient.conf
/etc/apache2/mods-available/fcgi_resilient.load"
check "deb: maintainer scripts postinst, prerm, postrm" same_lines \
    "$(dpkg-deb --ctrl-tarfile "$deb" | tar -tf - | sed 's|^\./||' | grep -E '^(pre|post)' | LC_ALL=C sort)" \
    "postinst
postrm
prerm"

so_tmp=$(mktemp)
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./usr/lib/apache2/modules/mod_fcgi_resilient.so >"$so_tmp"
check "deb: module has no undefined symbols of mod_proxy (nm -D: no proxy_*/ap_proxy_*)" \
    bash -c '! nm -D --undefined-only "$1" | grep -qE " (ap_)?proxy_"' _ "$so_tmp"
rm -f "$so_tmp"

# --- live --------------------------------------------------------------------------------------
live_status=0
# FCGI_RESILIENT_NO_NETNS=1 tries the fallback.
if [[ -z "${FCGI_RESILIENT_NO_NETNS:-}" ]] && unshare --net true 2>/dev/null; then
    echo "live tests in a network namespace of their own (unshare --net), Apache on 127.0.0.1:8080"
    unshare --net -- "$self" --live "$deb" netns 8080 || live_status=$?
else
    port=$(shuf -i 20000-40000 -n 1)
    while ss -Htln "sport = :$port" | grep -q .; do port=$(shuf -i 20000-40000 -n 1); done
    echo "live tests without a network namespace (unshare --net unavailable or FCGI_RESILIENT_NO_NETNS set), Apache on 127.0.0.1:$port"
    "$self" --live "$deb" nonetns "$port" || live_status=$?
fi
((live_status == 0)) || fail "live package tests (see FAIL lines above)"

echo "package tests: $((SECONDS - started))s, $failures failure(s) outside the live part, live part exit $live_status"
((failures == 0))
