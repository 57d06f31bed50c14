#!/usr/bin/env bash
# Builds the Debian package dist/svrd_VERSION_ARCH.deb (Debian 12), without network access.
#
#   scripts/package.sh                 release build (--static-swift-stdlib), then the package
#   scripts/package.sh --no-build      package the binary of an earlier run (.build-pkg/)
#
# The binary carries the Swift runtime (--static-swift-stdlib): installed, it needs only
# Debian libraries (Depends: below, checked against the binary's DT_NEEDED entries) and
# nothing from the Swift toolchain. The package installs:
#   /usr/bin/svrd, /usr/bin/svrctl -> svrd        the router and its operator name
#   /lib/systemd/system/svrd.service              deploy/systemd/svrd.service (paths /usr/bin)
#   /etc/svrd/ (0700)                             for svrd.toml and private.key (not shipped)
#   /usr/share/doc/svrd/examples/*.toml           deploy/examples (branch, cloud on-ramp, hub)
# postinst enables the unit but does not start it: the unit has
# ConditionPathExists=/etc/svrd/svrd.toml, so svrd starts once a config exists (at the
# next boot or with systemctl start svrd). Version and commit: `svrd --version`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH=$ROOT/.build-pkg
BUILD=1
[[ "${1:-}" == --no-build ]] && BUILD=0

VERSION=$(sed -n 's/^ *static let version = "\(.*\)"$/\1/p' Sources/svrd/Version.swift)
[[ -n "$VERSION" ]] || { echo "error: no version in Sources/svrd/Version.swift" >&2; exit 1; }
COMMIT=unknown
if git rev-parse --git-dir >/dev/null 2>&1; then
  COMMIT=$(git rev-parse --short=12 HEAD)
  [[ -z "$(git status --porcelain --untracked-files=no)" ]] || COMMIT+="-dirty"
fi
ARCH=$(dpkg --print-architecture)
DEB=$ROOT/dist/svrd_${VERSION}_${ARCH}.deb

log() { printf '== %s\n' "$*"; }

if [[ $BUILD == 1 ]]; then
  command -v swift >/dev/null || { echo "error: swift not found (README.md: Swift 6.3)" >&2; exit 1; }
  log "release build of svrd $VERSION (commit $COMMIT), static Swift runtime"
  mkdir -p "$SCRATCH"
  # Offline: reuse the dependencies `swift build` already resolved (Package.resolved pins them).
  if [[ ! -d "$SCRATCH/checkouts" && -d .build/checkouts ]]; then
    cp -a .build/repositories .build/checkouts .build/workspace-state.json "$SCRATCH/" 2>/dev/null || true
  fi
  if ! swift build -c release --product svrd --static-swift-stdlib --scratch-path "$SCRATCH" \
      -Xcc "-DSVRD_GIT_COMMIT=\"$COMMIT\"" >"$SCRATCH/build.log" 2>&1; then
    tail -n 30 "$SCRATCH/build.log" >&2
    echo "error: the release build failed (log: $SCRATCH/build.log)" >&2
    exit 1
  fi
fi
BIN=$SCRATCH/release/svrd
[[ -x "$BIN" ]] || { echo "error: $BIN missing (run without --no-build)" >&2; exit 1; }
"$BIN" --version | grep -qF "$VERSION (commit " || { echo "error: $BIN --version: $("$BIN" --version)" >&2; exit 1; }
COMMIT=$("$BIN" --version | sed -n 's/.*(commit \(.*\))$/\1/p')   # what the binary says (also with --no-build)

# ---- runtime dependencies: every DT_NEEDED library must come from a Debian package --------
declare -A DEP_OF=(
  [libc.so.6]="libc6 (>= 2.36)" [libm.so.6]="libc6 (>= 2.36)" [libdl.so.2]="libc6 (>= 2.36)"
  [libpthread.so.0]="libc6 (>= 2.36)" [librt.so.1]="libc6 (>= 2.36)" [libutil.so.1]="libc6 (>= 2.36)"
  [ld-linux-x86-64.so.2]="libc6 (>= 2.36)"
  [libstdc++.so.6]="libstdc++6 (>= 12)" [libgcc_s.so.1]="libgcc-s1 (>= 12)"
  [libmnl.so.0]="libmnl0 (>= 1.0.4)" [libnftnl.so.11]="libnftnl11 (>= 1.2.4)"
  [libcrypto.so.3]="libssl3 (>= 3.0.0)" [libssl.so.3]="libssl3 (>= 3.0.0)"
)
deps=()
while read -r lib; do
  [[ -n "${DEP_OF[$lib]:-}" ]] || { echo "error: svrd needs $lib, which is not a known Debian 12 library (Swift toolchain?)" >&2; exit 1; }
  deps+=("${DEP_OF[$lib]}")
done < <(readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
# SwiftPM links with RUNPATH $ORIGIN (the binary's own directory: /usr/bin, harmless);
# any other search path could point into the toolchain.
if readelf -d "$BIN" | grep -E '\((RUNPATH|RPATH)\)' | grep -vF 'Library runpath: [$ORIGIN]'; then
  echo "error: $BIN has an RPATH/RUNPATH other than \$ORIGIN (into the toolchain?)" >&2; exit 1
fi
DEPENDS=$(printf '%s\n' "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g')

# ---- the package tree -----------------------------------------------------------------------
STAGE=$SCRATCH/deb
rm -rf "$STAGE"; mkdir -p "$STAGE/DEBIAN"
install -D -m 0755 "$BIN" "$STAGE/usr/bin/svrd"
strip --strip-unneeded "$STAGE/usr/bin/svrd"
ln -s svrd "$STAGE/usr/bin/svrctl"
install -d -m 0755 "$STAGE/lib/systemd/system"
# The unit of deploy/systemd without its manual-install header, running /usr/bin/svrd.
{ echo "# svrd: Secure Vector Routing router (Debian package svrd). See /usr/share/doc/svrd/operations.md."
  sed -e '1,/^$/d' -e 's|/usr/local/bin/svrd|/usr/bin/svrd|g' deploy/systemd/svrd.service
} >"$STAGE/lib/systemd/system/svrd.service"
chmod 0644 "$STAGE/lib/systemd/system/svrd.service"
install -d -m 0700 "$STAGE/etc/svrd"
install -d -m 0755 "$STAGE/usr/share/doc/svrd/examples"
install -m 0644 deploy/examples/branch.toml deploy/examples/cloud-onramp.toml deploy/examples/hub.toml \
  "$STAGE/usr/share/doc/svrd/examples/"
cat >"$STAGE/usr/share/doc/svrd/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: svrd

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
chmod 0644 "$STAGE/usr/share/doc/svrd/copyright"
install -m 0644 docs/operations.md "$STAGE/usr/share/doc/svrd/operations.md"
install -m 0644 docs/config.md "$STAGE/usr/share/doc/svrd/config.md"

SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: svrd
Version: $VERSION
Architecture: $ARCH
Maintainer: svrd maintainers <svrd@localhost>
Installed-Size: $SIZE
Depends: $DEPENDS
Recommends: nftables, iproute2
Section: net
Priority: optional
Homepage: https://github.com/svrd/svrd
Description: Secure Vector Routing (SVR) router for Linux
 svrd turns a Linux host or VM into a session-aware, tunnel-free, deny-by-default
 overlay router that speaks Secure Vector Routing. Built from commit $COMMIT.
 Configure /etc/svrd/svrd.toml (examples in /usr/share/doc/svrd/examples), then
 systemctl start svrd.
CONTROL

cat >"$STAGE/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
# Enables svrd.service; starts nothing on a fresh install (the unit waits for
# /etc/svrd/svrd.toml); restarts a running svrd after an upgrade.
set -e
if [ "$1" = configure ]; then
    chmod 0700 /etc/svrd
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper unmask svrd.service >/dev/null || true
        deb-systemd-helper enable svrd.service >/dev/null || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then
            systemctl try-restart svrd.service >/dev/null || true
        fi
    fi
    if [ ! -e /etc/svrd/svrd.toml ]; then
        echo "svrd: enabled; it starts once /etc/svrd/svrd.toml exists (examples: /usr/share/doc/svrd/examples)"
    fi
fi
exit 0
POSTINST

cat >"$STAGE/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
# Stops svrd before its binary goes away (it removes its TUN, routes and nftables table).
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop svrd.service >/dev/null 2>&1 || true
fi
exit 0
PRERM

cat >"$STAGE/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
# remove: disable the unit (the enable links go); purge: also forget the enable state and
# remove /etc/svrd if only the package's files were in it. The administrator's key and
# config in /etc/svrd are kept (they were not made by the package): remove them by hand.
set -e
case "$1" in
remove)
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper disable svrd.service >/dev/null || true
    fi
    if [ -d /run/systemd/system ]; then systemctl --system daemon-reload >/dev/null || true; fi
    ;;
purge)
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper purge svrd.service >/dev/null || true
        deb-systemd-helper unmask svrd.service >/dev/null || true
    fi
    rm -rf /run/svrd
    if [ -d /etc/svrd ]; then
        rmdir /etc/svrd 2>/dev/null || echo "svrd: /etc/svrd kept: it holds files you made ($(ls /etc/svrd | tr '\n' ' '))"
    fi
    ;;
esac
exit 0
POSTRM
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"

mkdir -p "$ROOT/dist"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
log "built $DEB ($(du -h "$DEB" | cut -f1)), svrd $VERSION (commit $COMMIT)"
log "Depends: $DEPENDS"
