#!/usr/bin/env bash
# svrd network-namespace lab: two SVR routers, a WAN router between them, a client, a
# server and a client that is not allowed, all on this machine in network namespaces.
#
#   svrlab-cli ──┐                                                           ┌── svrlab-srv
#   10.1.0.10    ├── svrlab-a ══ 192.0.2.0/24 ══ svrlab-wan ══ 198.51.100.0/24 ══ svrlab-b ──┘ 10.100.0.10
#   svrlab-bad ──┘   (svrd, branch)        (plain IP forwarding,            (svrd, cloud on-ramp)
#   10.1.1.10                               no route to either LAN)
#
# Usage:  deploy/lab/lab.sh [--keep]     (as root; as another user it runs itself with sudo)
#   --keep       leave the lab running after the demo (tear it down with: lab.sh down)
#   down         remove a lab left by --keep or by a crashed run, then exit
# Environment:
#   SVRD_BIN=PATH   use this svrd binary instead of building one (swift build -c release)
#   LAB_NO_APT=1    do not install missing tools with apt-get
#   LAB_MB=N        size of the HTTP download in MB (default 8)
#
# The routers are looked at with svrctl (svrd under another name): the lab makes the link
# $WORK/bin/svrctl, and .build/release/svrctl next to the svrd it builds.
#
# Every namespace is named svrlab-*, every device svr*; the host namespace is not touched.
# Everything is removed on exit, on failure and on Ctrl-C. Exit 0 means every check passed.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EXAMPLES=$ROOT/deploy/examples/lab
UDPECHO=$ROOT/deploy/lab/udpecho.py
NS_ALL=(svrlab-cli svrlab-bad svrlab-a svrlab-wan svrlab-b svrlab-srv)
RUN_DIR=/run/svrd-lab
LAB_MB=${LAB_MB:-8}
KEEP=0

CLI_IP=10.1.0.10; BAD_IP=10.1.1.10; SRV_IP=10.100.0.10
A_LAN=10.1.0.1; A_GUEST=10.1.1.1; A_WAN=192.0.2.2; WAN_A=192.0.2.1
B_WAN=198.51.100.2; WAN_B=198.51.100.1; B_LAN=10.100.0.1

# ---- output -------------------------------------------------------------------------------
if [[ -t 1 ]]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; D=$'\e[2m'; N=$'\e[0m'; else B= G= R= D= N=; fi
STEP=0
step() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$B" "$STEP" "$*" "$N"; }
ok()   { printf '  %s✔%s %s\n' "$G" "$N" "$*"; }
info() { printf '  %s%s%s\n' "$D" "$*" "$N"; }
fail() { printf '  %s✘ %s%s\n' "$R" "$*" "$N" >&2; exit 1; }
indent() { sed 's/^/    /'; }

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

# ---- teardown (also on failure and Ctrl-C) -------------------------------------------------
PIDS=()          # processes this script started (daemons and servers), by PID
DAEMON_A=; DAEMON_B=
WORK=

stop_pid() {     # stop_pid PID [SECONDS]: SIGTERM, wait, then SIGKILL
  local pid=$1 wait_s=${2:-5} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < wait_s * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

teardown() {
  local pid ns
  # the daemons first (SIGTERM: they remove their TUN, routes and nftables table)
  for pid in $DAEMON_A $DAEMON_B; do stop_pid "$pid" 5; done
  for pid in "${PIDS[@]}"; do stop_pid "$pid" 2; done
  for ns in "${NS_ALL[@]}"; do ns_exists "$ns" && ip netns del "$ns" 2>/dev/null || true; done
  [[ -n "$WORK" && -d "$WORK" ]] && rm -rf "$WORK"
  rm -f "$RUN_DIR"/branch-a.sock "$RUN_DIR"/cloud-b.sock
  rmdir "$RUN_DIR" 2>/dev/null || true
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM ERR
  if [[ $rc -ne 0 && -n "$WORK" && -d "$WORK" ]]; then
    for f in "$WORK"/svrd-a.log "$WORK"/svrd-b.log; do
      [[ -s "$f" ]] || continue
      printf '\n%s-- last lines of %s --%s\n' "$D" "$(basename "$f")" "$N" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [[ $KEEP == 1 && $rc -eq 0 ]]; then
    printf '\nLab left running (--keep). Try:  ip netns exec svrlab-cli ping %s\n' "$SRV_IP"
    printf 'Look at it with: ip netns exec svrlab-a %s show sessions --socket %s/branch-a.sock\n' "$SVRCTL" "$RUN_DIR"
    printf 'Remove it with:  %s down   (daemon PIDs %s %s)\n' "$0" "$DAEMON_A" "$DAEMON_B"
    echo "$DAEMON_A $DAEMON_B ${PIDS[*]}" > "$RUN_DIR/pids"
    echo "$WORK" > "$RUN_DIR/work"
    return
  fi
  printf '\n%s== teardown%s\n' "$B" "$N"
  teardown
  local left; left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -c '^svrlab-' || true)
  if [[ "$left" == 0 ]]; then ok "namespaces, daemons and servers removed"; else printf '  ✘ %s svrlab namespaces left\n' "$left"; fi
  if [[ $rc -eq 0 ]]; then printf '\n%s%sAll checks passed.%s\n' "$B" "$G" "$N"
  elif [[ $rc -eq 130 || $rc -eq 143 ]]; then printf '\n%sLab interrupted at step %d; everything removed.%s\n' "$B" "$STEP" "$N" >&2
  else printf '\n%s%sLab FAILED at step %d (exit %d).%s\n' "$B" "$R" "$STEP" "$rc" "$N" >&2; fi
  exit "$rc"
}

down() {         # remove a lab left by --keep or a crashed run
  local pid
  if [[ -f "$RUN_DIR/pids" ]]; then
    read -r -a left_pids < "$RUN_DIR/pids" || true
    for pid in "${left_pids[@]}"; do
      # only our own processes: they must run inside an svrlab namespace
      if ip netns identify "$pid" 2>/dev/null | grep -q '^svrlab-'; then stop_pid "$pid" 5; fi
    done
    rm -f "$RUN_DIR/pids"
  fi
  for ns in "${NS_ALL[@]}"; do
    if ns_exists "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do stop_pid "$pid" 3; done
      ip netns del "$ns"
    fi
  done
  if [[ -f "$RUN_DIR/work" ]]; then
    local w; w=$(cat "$RUN_DIR/work")
    [[ "$w" == /tmp/svrd-lab.* && -d "$w" ]] && rm -rf "$w"
    rm -f "$RUN_DIR/work"
  fi
  rm -f "$RUN_DIR"/*.sock; rmdir "$RUN_DIR" 2>/dev/null || true
  echo "lab removed"
}

# ---- helpers ------------------------------------------------------------------------------
svrd() { "$SVRD_BIN" "$@"; }
SVRCTL=          # $WORK/bin/svrctl, a link to $SVRD_BIN (made by build)
show() { local ns=$1 router=$2; shift 2; nsx "$ns" "$SVRCTL" show "$@" --socket "$RUN_DIR/$router.sock"; }

bg() {           # bg NS LOGFILE CMD...: start CMD in NS, remember its PID in LAST_PID
  local ns=$1 log=$2; shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
  LAST_PID=$!
}

wait_for() {     # wait_for SECONDS CMD...: until CMD succeeds
  local t=$1; shift
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}

# Number of drops counted under "not-allowed" by a router (-1 if unreadable).
not_allowed_drops() {
  show "$1" "$2" stats --json 2>/dev/null | python3 "$ROOT/deploy/lab/dropcount.py" not-allowed 2>/dev/null || echo -1
}

# ---- steps --------------------------------------------------------------------------------
preflight() {
  step "Preflight"
  [[ $(id -u) == 0 ]] || fail "run as root"
  [[ $(uname -s) == Linux ]] || fail "Linux only"
  local need=() tool
  for tool in ip nft ping python3 curl tcpdump sha256sum; do command -v "$tool" >/dev/null || need+=("$tool"); done
  if ((${#need[@]})); then
    [[ "${LAB_NO_APT:-0}" == 1 ]] && fail "missing tools: ${need[*]} (LAB_NO_APT=1 set)"
    info "installing: iproute2 nftables iputils-ping python3 curl tcpdump coreutils"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      iproute2 nftables iputils-ping python3 curl tcpdump coreutils >/dev/null || fail "apt-get install failed"
  fi
  ok "root, tools present (ip, nft, ping, python3, curl, tcpdump)"
  for ns in "${NS_ALL[@]}"; do
    ns_exists "$ns" && fail "namespace $ns exists: a lab is still running (remove it with: $0 down)"
  done
  [[ -e /dev/net/tun ]] || { modprobe tun 2>/dev/null || true; }
  [[ -e /dev/net/tun ]] || fail "/dev/net/tun missing (modprobe tun)"
  ok "no lab running, /dev/net/tun present"
}

build() {
  step "Build svrd"
  if [[ -n "${SVRD_BIN:-}" ]]; then
    [[ -x "$SVRD_BIN" ]] || fail "SVRD_BIN=$SVRD_BIN is not executable"
    SVRD_BIN=$(realpath "$SVRD_BIN")
    link_svrctl
    ok "using SVRD_BIN=$SVRD_BIN ($("$SVRD_BIN" --version))"
    return
  fi
  command -v swift >/dev/null || fail "swift not found (install Swift 6.3, see README) or set SVRD_BIN"
  if ! { command -v pkg-config >/dev/null && pkg-config --exists libmnl libnftnl libcrypto; }; then
    [[ "${LAB_NO_APT:-0}" == 1 ]] && fail "build dependencies missing: libmnl-dev libnftnl-dev libssl-dev pkg-config"
    info "installing build dependencies: libmnl-dev libnftnl-dev libssl-dev pkg-config"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libmnl-dev libnftnl-dev libssl-dev pkg-config >/dev/null || fail "apt-get install of the build dependencies failed"
  fi
  info "swift build -c release --product svrd (the first build takes a few minutes)"
  local t0=$SECONDS
  (cd "$ROOT" && swift build -c release --product svrd >"$WORK/build.log" 2>&1) ||
    { tail -n 30 "$WORK/build.log" >&2; fail "swift build failed (log above)"; }
  SVRD_BIN=$ROOT/.build/release/svrd
  ln -sfn svrd "$ROOT/.build/release/svrctl"
  link_svrctl
  ok "built $SVRD_BIN ($("$SVRD_BIN" --version)) in $((SECONDS - t0)) s"
}

link_svrctl() {  # svrctl = svrd started under the name svrctl (argv[0])
  mkdir -p "$WORK/bin"
  ln -sfn "$SVRD_BIN" "$WORK/bin/svrctl"
  SVRCTL=$WORK/bin/svrctl
}

configure() {
  step "Keys and configs"
  local a_priv b_priv a_pub b_pub
  a_priv=$(svrd genkey); b_priv=$(svrd genkey)
  a_pub=$(svrd pubkey <<<"$a_priv"); b_pub=$(svrd pubkey <<<"$b_priv")
  ok "fresh X25519 keys: branch-a ${a_pub:0:12}…  cloud-b ${b_pub:0:12}…"
  local f priv peer_pub
  for f in branch-a cloud-b; do
    if [[ $f == branch-a ]]; then priv=$a_priv; peer_pub=$b_pub; else priv=$b_priv; peer_pub=$a_pub; fi
    # each example has one private-key and one (peer) public-key line: swap in the fresh keys
    sed -e "s|^private-key = \".*\"|private-key = \"$priv\"|" \
        -e "s|^public-key = \".*\"|public-key = \"$peer_pub\"|" \
        "$EXAMPLES/$f.toml" >"$WORK/$f.toml"
    chmod 600 "$WORK/$f.toml"
    grep -q "$priv" "$WORK/$f.toml" && grep -q "$peer_pub" "$WORK/$f.toml" || fail "key substitution in $f.toml"
    svrd check --config "$WORK/$f.toml" 2>&1 | indent || fail "svrd check rejected $f.toml"
  done
  ok "svrd check: both configs valid"
}

topology() {
  step "Topology (6 namespaces)"
  local ns
  for ns in "${NS_ALL[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  # veth pairs are created directly inside the namespaces (never in the host namespace)
  ip -n svrlab-cli link add svrcli0 type veth peer name svrlan0 netns svrlab-a
  ip -n svrlab-bad link add svrbad0 type veth peer name svrgst0 netns svrlab-a
  ip -n svrlab-a   link add svrwan0 type veth peer name svrwa netns svrlab-wan
  ip -n svrlab-wan link add svrwb   type veth peer name svrwan0 netns svrlab-b
  ip -n svrlab-b   link add svrlan0 type veth peer name svrsrv0 netns svrlab-srv

  ip -n svrlab-cli addr add $CLI_IP/24 dev svrcli0
  ip -n svrlab-bad addr add $BAD_IP/24 dev svrbad0
  ip -n svrlab-a   addr add $A_LAN/24 dev svrlan0
  ip -n svrlab-a   addr add $A_GUEST/24 dev svrgst0
  ip -n svrlab-a   addr add $A_WAN/24 dev svrwan0
  ip -n svrlab-wan addr add $WAN_A/24 dev svrwa
  ip -n svrlab-wan addr add $WAN_B/24 dev svrwb
  ip -n svrlab-b   addr add $B_WAN/24 dev svrwan0
  ip -n svrlab-b   addr add $B_LAN/24 dev svrlan0
  ip -n svrlab-srv addr add $SRV_IP/24 dev svrsrv0
  for ns in "${NS_ALL[@]}"; do
    for dev in $(ip -n "$ns" -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -v '^lo$'); do
      ip -n "$ns" link set "$dev" up
    done
  done
  for ns in svrlab-a svrlab-wan svrlab-b; do
    nsx "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  done
  # hosts: a route to the other LAN through their router; routers: the underlay only
  ip -n svrlab-cli route add 10.100.0.0/24 via $A_LAN
  ip -n svrlab-bad route add 10.100.0.0/24 via $A_GUEST
  ip -n svrlab-srv route add 10.1.0.0/16 via $B_LAN
  ip -n svrlab-a route add 198.51.100.0/24 via $WAN_A
  ip -n svrlab-b route add 192.0.2.0/24 via $WAN_B
  ok "svrlab-cli $CLI_IP, svrlab-bad $BAD_IP ── svrlab-a $A_WAN ── svrlab-wan ── $B_WAN svrlab-b ── svrlab-srv $SRV_IP"
  nsx svrlab-a ping -c1 -W2 $B_WAN >/dev/null || fail "underlay: svrlab-a cannot reach svrlab-b ($B_WAN)"
  ok "underlay: A reaches B's waypoint through the WAN router"
  if nsx svrlab-wan ip route get $SRV_IP >/dev/null 2>&1 || nsx svrlab-wan ip route get $CLI_IP >/dev/null 2>&1; then
    fail "the WAN router has a route to a LAN"
  fi
  nsx svrlab-cli ping -c1 -W1 $SRV_IP >/dev/null 2>&1 && fail "client reaches the server before svrd runs"
  ok "without svrd the client cannot reach the server (the WAN router has no LAN routes)"
}

start_daemons() {
  step "Start svrd in svrlab-a (branch) and svrlab-b (cloud on-ramp)"
  mkdir -p "$RUN_DIR"
  bg svrlab-a "$WORK/svrd-a.log" "$SVRD_BIN" run --config "$WORK/branch-a.toml"; DAEMON_A=$LAST_PID
  bg svrlab-b "$WORK/svrd-b.log" "$SVRD_BIN" run --config "$WORK/cloud-b.toml"; DAEMON_B=$LAST_PID
  local r ns
  for r in a b; do
    ns=svrlab-$r; local name=branch-a pid=$DAEMON_A
    [[ $r == b ]] && { name=cloud-b; pid=$DAEMON_B; }
    local end=$((SECONDS + 20))
    until ip -n "$ns" link show svr0 >/dev/null 2>&1 && show "$ns" "$name" stats >/dev/null 2>&1; do
      kill -0 "$pid" 2>/dev/null || fail "svrd in $ns exited (log below)"
      ((SECONDS < end)) || fail "svrd in $ns: no svr0 or no answer to 'svrd show stats' after 20 s"
      sleep 0.2
    done
    ok "svrd $name up (pid $pid): $(ip -n "$ns" -br addr show svr0 | awk '{print $1, $2, $3}')"
  done
  ip -n svrlab-a route show 10.100.0.0/24 | grep -q 'dev svr0' || fail "svrd did not route 10.100.0.0/24 into svr0 on A"
  ok "A routes the cloud services into svr0: $(ip -n svrlab-a route show dev svr0 | tr '\n' ' ')"
  nsx svrlab-b nft list table inet svrd >/dev/null 2>&1 || fail "no nftables table inet svrd on B"
  ok "B has its nftables table inet svrd (waypoint ports silenced, return path marked)"
}

demo_ping() {
  step "ICMP: ping from the client to the server"
  local out
  out=$(nsx svrlab-cli ping -c 4 -i 0.2 -W 2 $SRV_IP 2>&1) || { echo "$out" | indent; fail "ping failed"; }
  echo "$out" | tail -n 2 | indent
  ok "ping $CLI_IP → $SRV_IP through svrd"
}

demo_http() {
  step "TCP: HTTP download of ${LAB_MB} MB"
  mkdir -p "$WORK/www"
  head -c "$((LAB_MB * 1024 * 1024))" /dev/urandom >"$WORK/www/blob.bin"
  local want; want=$(sha256sum "$WORK/www/blob.bin" | cut -d' ' -f1)
  bg svrlab-srv "$WORK/http.log" python3 -m http.server 8080 --bind $SRV_IP --directory "$WORK/www"; PIDS+=("$LAST_PID")
  wait_for 10 nsx svrlab-srv python3 -c "import socket; socket.create_connection(('$SRV_IP', 8080), 1)" ||
    fail "HTTP server did not start"
  local t0 t1 got size
  t0=$(date +%s.%N)
  nsx svrlab-cli curl -sS --fail --max-time 60 -o "$WORK/download.bin" "http://$SRV_IP:8080/blob.bin" ||
    fail "curl http://$SRV_IP:8080/blob.bin failed"
  t1=$(date +%s.%N)
  size=$(stat -c %s "$WORK/download.bin"); got=$(sha256sum "$WORK/download.bin" | cut -d' ' -f1)
  [[ "$got" == "$want" ]] || fail "download differs: $size bytes, sha256 $got (want $want)"
  ok "$size bytes, sha256 ${got:0:16}… matches ($(python3 -c "print('%.1f' % ($size * 8 / ($t1 - $t0) / 1e6))") Mbit/s)"
}

demo_udp() {
  step "UDP: echo exchange"
  bg svrlab-srv "$WORK/udpecho.log" python3 "$UDPECHO" server $SRV_IP 9000; PIDS+=("$LAST_PID")
  sleep 0.3
  local out
  out=$(nsx svrlab-cli python3 "$UDPECHO" client $SRV_IP 9000 20 "svrd-lab" 2>&1) || { echo "$out" | indent; fail "UDP echo failed"; }
  ok "$out ($CLI_IP → $SRV_IP:9000, service cloud-echo, aes-gcm)"
}

demo_show() {
  step "Sessions and statistics"
  echo "  ${B}svrctl show sessions${N} (svrlab-a, branch-a):"
  show svrlab-a branch-a sessions 2>&1 | indent || fail "svrctl show sessions failed on A"
  echo "  ${B}svrctl show sessions${N} (svrlab-b, cloud-b):"
  show svrlab-b cloud-b sessions 2>&1 | indent || fail "svrctl show sessions failed on B"
  echo "  ${B}svrctl show stats${N} (svrlab-a, branch-a):"
  show svrlab-a branch-a stats 2>&1 | indent || fail "svrctl show stats failed on A"
  echo "  ${B}svrctl show peers${N} (svrlab-a, branch-a):"
  show svrlab-a branch-a peers 2>&1 | indent || fail "svrctl show peers failed on A"
}

demo_denied() {
  step "Deny by default: a guest (10.1.1.10) is not allowed to the cloud"
  local before after
  before=$(not_allowed_drops svrlab-a branch-a)
  [[ "$before" -ge 0 ]] || fail "cannot read the not-allowed drop counter from 'svrd show stats --json'"
  if nsx svrlab-bad curl -sS --max-time 3 -o /dev/null "http://$SRV_IP:8080/blob.bin" 2>/dev/null; then
    fail "the guest reached the server"
  fi
  ok "guest's HTTP request refused (a TCP RST from router A: refused-sessions = \"reject\")"
  if nsx svrlab-bad ping -c 2 -i 0.2 -W 1 $SRV_IP >/dev/null 2>&1; then fail "the guest's ping got through"; fi
  ok "guest's ping refused"
  after=$(not_allowed_drops svrlab-a branch-a)
  info "not-allowed drops on branch-a: before $before, after $after"
  ((after > before)) || fail "the refused packets were not counted as not-allowed drops"
  ok "drops counted: not-allowed $before → $after"
}

# ---- main ---------------------------------------------------------------------------------
. "$ROOT/scripts/as-root.sh"
AS_ROOT_KEEP="SVRD_BIN LAB_NO_APT LAB_MB"
[[ "${1:-}" == -h || "${1:-}" == --help ]] || as_root "$0" "$@"
case "${1:-}" in
  down) down; exit 0;;
  --keep) KEEP=1;;
  "") ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0;;
  *) echo "usage: $0 [--keep|down]" >&2; exit 2;;
esac

trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
preflight
WORK=$(mktemp -d /tmp/svrd-lab.XXXXXX)
build
configure
topology
start_daemons
demo_ping
demo_http
demo_udp
demo_show
demo_denied
