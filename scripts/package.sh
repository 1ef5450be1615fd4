#!/usr/bin/env bash
# Builds the Debian and RPM packages of mod_fcgi_resilient + fcgi-resilient-helper with the
# ecosystem's tools, configured in mod_fcgi_resilient/Cargo.toml:
#   target/debian/libapache2-mod-fcgi-resilient_<version>-1_<arch>.deb   (cargo deb)
#   target/generate-rpm/mod_fcgi_resilient-<version>-1.<arch>.rpm       (cargo generate-rpm)
# CARGO_TARGET_DIR is honoured. Debian 12, as root (install-deps.sh uses apt-get).
# See docs/packaging.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

target_dir="${CARGO_TARGET_DIR:-target}"

# The module is only loadable by an httpd with the same module magic number major it was
# compiled against (ap_mmn.h). The .deb's "apache2-api-NNNNNNNN" dependency is written in
# Cargo.toml (cargo-deb has no build-time substitution): refuse to package a mismatch.
mmn_header="$(apxs -q INCLUDEDIR)/ap_mmn.h"
mmn=$(awk '$1 == "#define" && $2 == "MODULE_MAGIC_NUMBER_MAJOR" { print $3 }' "$mmn_header")
if [[ ! "$mmn" =~ ^[0-9]+$ ]]; then
    echo "package: no MODULE_MAGIC_NUMBER_MAJOR in $mmn_header" >&2
    exit 1
fi
if ! grep -qE "^depends = \".*apache2-api-$mmn(,|\")" mod_fcgi_resilient/Cargo.toml; then
    echo "package: the headers in $mmn_header are for Apache API $mmn, but" \
        "[package.metadata.deb] depends in mod_fcgi_resilient/Cargo.toml names another" \
        "apache2-api-*: update it to apache2-api-$mmn" >&2
    exit 1
fi
# Fedora/RHEL's httpd Provides httpd-mmn = <major><ISA> (%{_httpd_mmn}, e.g. 20120211x8664).
isa=$(rpm --eval '%{__isa_name}%{__isa_bits}' 2>/dev/null || true)
if [[ -z "$isa" || "$isa" == *%* ]]; then
    case "$(uname -m)" in
        x86_64) isa=x8664 ;;
        aarch64) isa=aarch64 ;;
        *) isa="$(uname -m)" ;;
    esac
fi

cargo build --locked --release -p mod_fcgi_resilient -p fcgi-resilient-helper

# One package of each kind in the output directories, the one built now.
rm -f "$target_dir"/debian/libapache2-mod-fcgi-resilient_*.deb \
    "$target_dir"/generate-rpm/mod_fcgi_resilient-*.rpm

# --no-build: built above, together with the helper (cargo deb would build only this crate).
# --strip: [profile.release] keeps line tables for backtraces in development builds; the
# packages ship stripped binaries, as Debian's and Fedora's do.
cargo deb --locked -p mod_fcgi_resilient --no-build --strip
# cargo generate-rpm packages target/<profile>/ as it is and has no --strip: give it stripped
# copies under target/rpm-stripped/ (its --profile only picks that directory) and leave the
# release build's own files alone.
stripped="$target_dir/rpm-stripped"
mkdir -p "$stripped"
for file in libmod_fcgi_resilient.so fcgi-resilient-helper; do
    strip --strip-unneeded --remove-section=.comment -o "$stripped/$file" "$target_dir/release/$file"
done
cargo generate-rpm -p mod_fcgi_resilient --profile rpm-stripped \
    --set-metadata "requires = { httpd = \"*\", httpd-mmn = \"= ${mmn}${isa}\" }"

echo "package: built"
ls -1 "$target_dir"/debian/libapache2-mod-fcgi-resilient_*.deb \
    "$target_dir"/generate-rpm/mod_fcgi_resilient-*.rpm
