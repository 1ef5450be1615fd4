#!/usr/bin/env bash
# Installs what building and testing need on Debian 12 (bookworm), as root: Apache with its
# development headers (apxs, APR), PHP-FPM, libclang for bindgen, rpm (rpmbuild) and cargo-deb
# to build the packages, python3 and jq for the scripts that generate their man pages and
# licence files, lintian, rpmlint and man-db to check them, systemd and systemd-container to boot a real
# systemd in systemd-nspawn for the socket keeper's tests (scripts/systemd-container-boot.sh). Installs only
# what is missing.
set -euo pipefail

packages=(apache2 apache2-dev php-fpm libclang-dev clang pkg-config curl nghttp2-client openssl rpm ca-certificates
    python3 jq lintian rpmlint man-db systemd systemd-container)
missing=()
for pkg in "${packages[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "install-deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Debian's apache2 and php-fpm postinst start their services where an init system runs;
    # policy-rc.d keeps them stopped so tests own every server they talk to.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for tool in cargo-deb; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-deps: cargo install $tool"
        cargo install --locked --quiet "$tool"
    fi
done
