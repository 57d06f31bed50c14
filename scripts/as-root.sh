# Sourced by scripts/test.sh and deploy/lab/lab.sh: make the script run as root.
#
#   as_root "$0" "$@"      (call it before anything else)
#
# As root (with or without sudo installed) it returns and the script goes on. Otherwise it
# runs the script again with sudo, keeping PATH (the swift toolchain is usually on the
# user's PATH only, and sudo's secure_path would drop it; the sbin directories are added
# in front) and the script's own settings
# (the variables named in AS_ROOT_KEEP). Without sudo it stops with a clear message.
as_root() {
  [[ $(id -u) -eq 0 ]] && return 0
  local script=$1; shift
  if ! command -v sudo >/dev/null 2>&1; then
    echo "error: $(basename "$script") must run as root, and sudo is not installed: run it in a root shell (su -)" >&2
    exit 1
  fi
  # root's tools (nft, sysctl, modprobe) are in the sbin directories a user's PATH may lack
  local keep=("PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH") v
  for v in ${AS_ROOT_KEEP:-}; do
    [[ -n "${!v+x}" ]] && keep+=("$v=${!v}")
  done
  echo "$(basename "$script"): not root, running it again with sudo" >&2
  exec sudo -- env "${keep[@]}" "$script" "$@"
}
