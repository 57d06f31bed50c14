#!/usr/bin/env bash
# The test command: installs what the tests need (Debian 12), builds, runs every test tier,
# and checks that nothing was left behind. It runs as root (the namespace tests need it):
#   scripts/test.sh            as root; as another user it runs itself again with sudo
# Environment:
#   SVRD_TEST_UNPRIVILEGED=1   run as this (non-root) user: the namespace tests are skipped
#   SVRD_TEST_PACKAGE=1        also build the Debian package (release build, several minutes)
#                              and test it: scripts/test-package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/as-root.sh
AS_ROOT_KEEP="SVRD_TEST_PACKAGE"
[[ "${SVRD_TEST_UNPRIVILEGED:-0}" == 1 ]] || as_root "$0" "$@"

APT_PACKAGES=(libmnl-dev libnftnl-dev libssl-dev pkg-config iproute2 nftables iperf3
              tcpdump iputils-ping procps curl python3 cloud-init traceroute)

log() { printf '\n== %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "warning: not root (SVRD_TEST_UNPRIVILEGED=1): the network-namespace tests will be skipped" >&2
else
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  modprobe tun 2>/dev/null || true
  modprobe nf_tables 2>/dev/null || true
fi

command -v swift >/dev/null || {
  echo "error: swift not found in PATH: install Swift 6.3 (README.md, \"Swift 6.3\")" >&2; exit 1; }

log "build (debug, warnings are errors)"
swift build --build-tests 2>&1 | tee /tmp/svrd-build.log | grep -E "error|warning:" || true
if grep -q "warning:" /tmp/svrd-build.log; then echo "error: the build has warnings" >&2; exit 1; fi
grep -q "error:" /tmp/svrd-build.log && exit 1
# svrctl is svrd under another name (argv[0]); the README and the tests use both.
ln -sfn svrd .build/debug/svrctl

svr_objects() {
  { ip netns list 2>/dev/null | awk '{print "ns " $1}'
    ip -o link show 2>/dev/null | awk -F': ' '{print "link " $2}' | cut -d@ -f1
    nft list tables 2>/dev/null | awk '{print "nft " $2 " " $3}'
  } | grep -E ' svr' | sort || true
}
before=$(svr_objects)

log "tests"
status=0
swift test --skip-build 2>&1 | tee /tmp/svrd-test.log || status=$?

if [[ $(id -u) -eq 0 ]]; then
  log "leftover check"
  after=$(svr_objects)
  leftover=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
  if [[ -n "$leftover" ]]; then
    echo "error: the tests left behind:" >&2
    echo "$leftover" >&2
    echo "$leftover" | awk '$1=="ns"{print $2}' | xargs -r -n1 ip netns del 2>/dev/null || true
    status=1
  else
    echo "nothing left behind"
  fi
fi

# The Debian package: opt-in, its release build with the static Swift runtime takes several
# minutes (over 15 on 2 busy cores) on top of the debug build the tests use.
if [[ "${SVRD_TEST_PACKAGE:-0}" == 1 ]]; then
  log "Debian package (scripts/test-package.sh)"
  bash scripts/test-package.sh || status=1
else
  echo "(the Debian package test is opt-in: SVRD_TEST_PACKAGE=1 scripts/test.sh)"
fi
exit $status
