#!/usr/bin/env bash
# Builds the Debian and RPM packages of mod_fcgi_resilient + fcgi-resilient-helper:
#   target/debian/libapache2-mod-fcgi-resilient_<version>-1_<arch>.deb   (cargo deb, configured
#       in mod_fcgi_resilient/Cargo.toml, plus md5sums)
#   target/rpm/mod_fcgi_resilient-<version>-1%{?dist}.<arch>.rpm         (rpmbuild,
#       packaging/rpm/mod_fcgi_resilient.spec)
# Both carry man pages generated from docs/*.md (scripts/gen-man.py) and the licences of every
# crate linked into the binaries (scripts/gen-copyright.py, from cargo metadata).
# CARGO_TARGET_DIR is honoured. Debian 12, as root (install-deps.sh uses apt-get).
# DEBFULLNAME and DEBEMAIL, when both set, replace the .deb's Maintainer.
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
# The module refuses to run in an httpd older than the headers it was built against, and in
# any before 2.4.53 (mod_fcgi_resilient/src/httpd_version.rs): both packages require the
# headers' version. Cargo.toml's "apache2-bin (>= 2.4.53)" is raised to it below.
release_header="$(apxs -q INCLUDEDIR)/ap_release.h"
httpd_version=$(awk '$1 == "#define" && $2 ~ /^AP_SERVER_(MAJORVERSION|MINORVERSION|PATCHLEVEL)_NUMBER$/ { n[$2] = $3 }
    END { print n["AP_SERVER_MAJORVERSION_NUMBER"] "." n["AP_SERVER_MINORVERSION_NUMBER"] "." n["AP_SERVER_PATCHLEVEL_NUMBER"] }' \
    "$release_header")
if [[ ! "$httpd_version" =~ ^2\.4\.[0-9]+$ ]] || dpkg --compare-versions "$httpd_version" lt 2.4.53; then
    echo "package: the headers in $release_header are httpd '$httpd_version'; the module needs 2.4.53 or later" >&2
    exit 1
fi
floor='apache2-bin (>= 2.4.53)'
if ! grep -qF "$floor" mod_fcgi_resilient/Cargo.toml; then
    echo "package: [package.metadata.deb] depends in mod_fcgi_resilient/Cargo.toml lacks \"$floor\"" >&2
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
target_dir=$(realpath "$target_dir")
package_field() {
    cargo metadata --format-version 1 --no-deps --locked |
        jq -r ".packages[] | select(.name == \"mod_fcgi_resilient\") | $1 // empty"
}
version=$(package_field .version)
# The RPM's URL tag, only if the project has a real one (no placeholder).
url=$(package_field '.homepage // .repository')
url_define=()
if [[ -n "$url" ]]; then url_define=(--define "pkg_url $url"); fi

# One package of each kind in the output directories, the one built now.
rm -f "$target_dir"/debian/libapache2-mod-fcgi-resilient_*.deb "$target_dir"/rpm/mod_fcgi_resilient-*.rpm

# --- generated documents, shared by both packages ----------------------------------------------
# In target/release/package-data/ because cargo-deb maps only target/release/ to the real
# target directory.
data="$target_dir/release/package-data"
rm -rf "$data"
mkdir -p "$data/man"
# The man pages' date is the last change of their source, so rebuilding does not change them.
doc_date() { git log -1 --format=%cs -- "$1" 2>/dev/null | grep . || date -u -r "$1" +%F; }
scripts/gen-man.py docs/helper.md "$data/man/fcgi-resilient-helper.8" \
    fcgi-resilient-helper 8 "$version" "$(doc_date docs/helper.md)"
# Section 5: the module's page documents configuration directives, not a command.
scripts/gen-man.py docs/mod_fcgi_resilient.md "$data/man/mod_fcgi_resilient.5" \
    mod_fcgi_resilient 5 "$version" "$(doc_date docs/mod_fcgi_resilient.md)"
for page in "$data"/man/*.[58]; do
    # Debian policy: gzip -9, no name or timestamp in the header (reproducible).
    gzip -9nc "$page" >"$page.gz"
done
scripts/gen-copyright.py copyright "$data/copyright"
rpm_license=$(scripts/gen-copyright.py rpm-license)

# --- .deb ----------------------------------------------------------------------------------------
maintainer=()
if [[ -n "${DEBFULLNAME:-}" && -n "${DEBEMAIL:-}" ]]; then
    maintainer=(--maintainer "$DEBFULLNAME <$DEBEMAIL>")
fi
# --no-build: built above, together with the helper (cargo deb would build only this crate).
# --strip: [profile.release] keeps line tables for backtraces in development builds; the
# packages ship stripped binaries, as Debian's and Fedora's do.
cargo deb --locked -p mod_fcgi_resilient --no-build --strip "${maintainer[@]}"
deb=$(compgen -G "$target_dir/debian/libapache2-mod-fcgi-resilient_*.deb")
# cargo-deb writes no md5sums control file (dpkg --verify and debsums use it): unpack, add it,
# rebuild with dpkg-deb, which is what dh_md5sums + dh_builddeb do. On the way, the
# apache2-bin floor becomes the headers' version (cargo-deb has no build-time substitution).
unpacked="$target_dir/debian/unpacked"
rm -rf "$unpacked"
dpkg-deb --raw-extract "$deb" "$unpacked"
sed -i "/^Depends:/s/apache2-bin (>= 2\.4\.53)/apache2-bin (>= $httpd_version)/" "$unpacked/DEBIAN/control"
grep -qF "apache2-bin (>= $httpd_version)" "$unpacked/DEBIAN/control"
(cd "$unpacked" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum >DEBIAN/md5sums)
chmod 644 "$unpacked/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$unpacked" "$deb" >/dev/null
rm -rf "$unpacked"

# --- .rpm ----------------------------------------------------------------------------------------
# The spec installs stripped copies from target/rpm-stripped/ and leaves the release build's
# own files alone.
stripped="$target_dir/rpm-stripped"
rm -rf "$stripped"
mkdir -p "$stripped/man"
for file in libmod_fcgi_resilient.so fcgi-resilient-helper; do
    strip --strip-unneeded --remove-section=.comment -o "$stripped/$file" "$target_dir/release/$file"
done
cp "$data"/man/*.[58] "$stripped/man/"
cp "$data/copyright" "$stripped/LICENSE.dependencies"
topdir="$target_dir/rpmbuild"
# brp-compress (gzips the man pages) is a bash script that Debian's rpm runs with #!/bin/sh,
# which is dash there: run it with bash, as on Fedora.
rm -rf "$topdir"
rpmbuild -bb --quiet \
    --define "_topdir $topdir" \
    --define "_rpmdir $target_dir/rpm" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "srcdir $PWD" \
    --define "stagedir $stripped" \
    --define "pkg_version $version" \
    --define "pkg_license $rpm_license" \
    --define "httpd_mmn ${mmn}${isa}" \
    --define "httpd_version $httpd_version" \
    "${url_define[@]}" \
    --define "__brp_compress bash /usr/lib/rpm/brp-compress %{_prefix}" \
    packaging/rpm/mod_fcgi_resilient.spec
rm -rf "$topdir"

echo "package: built"
ls -1 "$target_dir"/debian/libapache2-mod-fcgi-resilient_*.deb "$target_dir"/rpm/mod_fcgi_resilient-*.rpm
