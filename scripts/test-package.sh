#!/usr/bin/env bash
# Tests the Debian package on a root file system without the Swift toolchain:
#
#   scripts/test-package.sh [dist/svrd_VERSION_ARCH.deb]    (builds it first when not given)
#
# In a private mount namespace (unshare -m) it makes a copy-on-write view of / (overlayfs,
# its writes go to a tmpfs that disappears with the namespace: the host is not changed),
# hides /opt/swift under an empty tmpfs, and chroots into it to:
#   1. check that the toolchain is gone (no swift, empty /opt/swift),
#   2. dpkg -i the package (its Depends must already be installed, as on any Debian 12
#      with libmnl0, libnftnl11, libssl3),
#   3. check the installed files and modes, that ldd finds every library outside /opt/swift,
#      and that the unit is enabled but svrd not started,
#   4. run svrd --version, svrctl --version, svrd genkey / pubkey and svrd check on every
#      example config, from the installed binary,
#   5. dpkg -r, then dpkg --purge, comparing the file list of /etc /usr /var /run /opt with
#      the one from before the install: nothing may be left.
#   6. the cloud-init on-ramp script of deploy/cloud-init/onramp.yaml with SVRD_DEB set to the
#      package's path, in its own network namespace (its sysctl stays there) and with a
#      stand-in systemctl: it installs the package, makes the key, writes a config that
#      passes svrd check, enables forwarding and restarts svrd.
# Must run as root. Exit 0 means every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/as-root.sh
as_root "$0" "$@"

DEB=${1:-}
if [[ -z "$DEB" ]]; then
  bash scripts/package.sh
  DEB=$(ls -t dist/svrd_*.deb | head -n1)
fi
DEB=$(realpath "$DEB")
YAML=$(realpath deploy/cloud-init/onramp.yaml)
[[ -f "$DEB" ]] || { echo "error: $DEB not found" >&2; exit 1; }

T=$(mktemp -d /tmp/svrpkgtest.XXXXXX)
trap 'rmdir "$T" 2>/dev/null || true' EXIT

# Everything below runs in the private mount namespace; its mounts vanish with it.
unshare -m --propagation private bash -s "$T" "$DEB" "$YAML" <<'INNER'
set -euo pipefail
T=$1; DEB=$2; YAML=$3
mount -t tmpfs svrpkgtest "$T"
mkdir "$T/upper" "$T/work" "$T/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$T/root"
R=$T/root
mount -t tmpfs none "$R/opt/swift"
mount -t proc proc "$R/proc"
mount --bind /dev "$R/dev"
mount -t tmpfs none "$R/run"
mount -t tmpfs none "$R/tmp"
cp "$DEB" "$R/tmp/svrd.deb"

pass() { printf '  ✔ %s\n' "$*"; }
fail() { printf '  ✘ %s\n' "$*" >&2; exit 1; }
in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
files() {      # the file list (path, type, mode) of the places a package can touch
  in_root find /etc /usr /var /run /opt -xdev \
    \( -path /var/lib/dpkg -o -path /var/log -o -path /var/cache \) -prune -o -printf '%p %y %m\n' | sort
}

echo "== a root without the Swift toolchain"
in_root sh -c 'command -v swift' >/dev/null 2>&1 && fail "swift is still on PATH"
[[ -z "$(ls -A "$R/opt/swift")" ]] || fail "/opt/swift is not empty"
pass "no swift, /opt/swift empty"

before=$(files)
echo "== dpkg -i $(basename "$DEB")"
in_root dpkg -i /tmp/svrd.deb | sed 's/^/    /' || fail "dpkg -i failed"
in_root dpkg -s svrd | grep -q '^Status: install ok installed' || fail "svrd not installed"
pass "installed: $(in_root dpkg-query -W -f='${Package} ${Version}, Depends: ${Depends}' svrd)"

echo "== installed files"
[[ "$(in_root stat -c '%a %U' /usr/bin/svrd)" == "755 root" ]] || fail "/usr/bin/svrd mode"
[[ "$(in_root readlink /usr/bin/svrctl)" == svrd ]] || fail "/usr/bin/svrctl is not a link to svrd"
[[ "$(in_root stat -c '%a %U' /etc/svrd)" == "700 root" ]] || fail "/etc/svrd is not 0700 root"
[[ -z "$(ls -A "$R/etc/svrd")" ]] || fail "/etc/svrd is not empty: $(ls "$R/etc/svrd")"
unit=$R/lib/systemd/system/svrd.service
[[ -f $unit ]] || fail "no unit"
grep -qx 'ExecStart=/usr/bin/svrd run --config /etc/svrd/svrd.toml' "$unit" || fail "unit ExecStart does not run /usr/bin/svrd"
grep -qx 'ConditionPathExists=/etc/svrd/svrd.toml' "$unit" || fail "unit has no ConditionPathExists"
! grep -q /usr/local "$unit" || fail "unit refers to /usr/local"
[[ -L $R/etc/systemd/system/multi-user.target.wants/svrd.service ]] || fail "unit not enabled"
pass "svrd 0755, svrctl -> svrd, /etc/svrd 0700 and empty, unit enabled (starts once svrd.toml exists)"
in_root ldd /usr/bin/svrd >"$T/ldd" || fail "ldd failed"
sed 's/^/    /' "$T/ldd"
grep -q 'not found' "$T/ldd" && fail "a library is missing"
grep -q '/opt/swift' "$T/ldd" && fail "a library comes from /opt/swift"
grep -qi swift "$T/ldd" && fail "a Swift runtime library is needed"
pass "every library found, none from the Swift toolchain"

echo "== the installed binary"
v=$(in_root svrd --version) || fail "svrd --version failed"
[[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+\ \(commit\ [0-9a-f]{7,}(-dirty)?\)$ ]] || fail "svrd --version: '$v'"
pass "svrd --version: $v"
[[ "$(in_root svrctl --version)" == "$v" ]] || fail "svrctl --version differs"
in_root svrctl --help | grep -q 'show' || fail "svrctl --help does not offer show"
pass "svrctl --version: same; svrctl offers show"
in_root svrd genkey --out /etc/svrd/private.key || fail "svrd genkey failed"
[[ "$(in_root stat -c '%a' /etc/svrd/private.key)" == 600 ]] || fail "private.key is not 0600"
in_root sh -c 'svrd pubkey < /etc/svrd/private.key' | grep -Eq '^[A-Za-z0-9+/]{43}=$' || fail "svrd pubkey"
pass "svrd genkey (0600) and pubkey"
for ex in "$R"/usr/share/doc/svrd/examples/*.toml; do
  f=/usr/share/doc/svrd/examples/$(basename "$ex")
  out=$(in_root svrd check --config "$f" 2>&1) || { echo "$out" >&2; fail "svrd check $f"; }
  pass "svrd check $f"
done
rm -f "$R/etc/svrd/private.key"

echo "== dpkg -r, dpkg --purge"
in_root dpkg -r svrd | sed 's/^/    /' || fail "dpkg -r failed"
[[ ! -e $R/usr/bin/svrd && ! -L $R/usr/bin/svrctl ]] || fail "binary left after dpkg -r"
[[ ! -e $R/etc/systemd/system/multi-user.target.wants/svrd.service ]] || fail "enable link left after dpkg -r"
pass "dpkg -r: binary, link and unit gone"
in_root dpkg --purge svrd | sed 's/^/    /' || fail "dpkg --purge failed"
in_root dpkg -s svrd >/dev/null 2>&1 && fail "dpkg still knows svrd after --purge"
after=$(files)
if [[ "$before" != "$after" ]]; then
  diff <(echo "$before") <(echo "$after") | sed 's/^/    /' >&2
  fail "the file list differs after purge"
fi
pass "after purge the file list is the same as before the install ($(echo "$before" | wc -l) entries)"

echo "== cloud-init on-ramp script (deploy/cloud-init/onramp.yaml)"
block() {      # the content of a write_files entry
  awk -v p="$1" '$0 ~ "- path: "p"$" {f=1; next} f && /content: \|/ {c=1; next}
    c && /^      / {print substr($0, 7); next} c && /^$/ {print ""; next} c {exit}' "$YAML"
}
block /usr/local/sbin/svrd-onramp >"$R/usr/local/sbin/svrd-onramp"
chmod 0755 "$R/usr/local/sbin/svrd-onramp"
block /etc/default/svrd-onramp | sed -e 's|^SVRD_DEB=.*|SVRD_DEB="/tmp/svrd.deb"|' \
  -e 's|^WAN_DEVICE=.*|WAN_DEVICE="eth0"|' -e 's|^WAN_ADDRESS=.*|WAN_ADDRESS="10.100.0.5"|' \
  -e "s|^SVRD_DEB_SHA256=.*|SVRD_DEB_SHA256=\"$(sha256sum "$DEB" | cut -d' ' -f1)\"|" >"$R/etc/default/svrd-onramp"
printf '#!/bin/sh\necho "systemctl $*" >> /tmp/systemctl.calls\n' >"$R/usr/local/sbin/systemctl"
chmod 0755 "$R/usr/local/sbin/systemctl"
unshare -n chroot "$R" env -i PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
  /usr/local/sbin/svrd-onramp >"$T/onramp.log" 2>&1 || { sed 's/^/    /' "$T/onramp.log" >&2; fail "svrd-onramp failed"; }
grep -E '^svrd-onramp:|^svrd public key' "$T/onramp.log" | sed 's/^/    /'
in_root dpkg -s svrd | grep -q '^Status: install ok installed' || fail "the script did not install svrd"
[[ "$(in_root stat -c '%a' /etc/svrd/private.key)" == 600 ]] || fail "no private key (0600)"
[[ "$(in_root stat -c '%a' /etc/svrd/svrd.toml)" == 600 ]] || fail "no svrd.toml (0600)"
in_root svrd check --config /etc/svrd/svrd.toml >/dev/null || fail "the written config does not pass svrd check"
grep -qx 'net.ipv4.ip_forward=1' "$R/etc/sysctl.d/60-svrd.conf" || fail "IP forwarding not persisted"
grep -qx 'systemctl restart svrd.service' "$R/tmp/systemctl.calls" || fail "svrd not (re)started"
pass "installed from SVRD_DEB (sha256 checked), key 0600, svrd.toml passes check, forwarding on, svrd started"
echo "package test passed"
INNER
