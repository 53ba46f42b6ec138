#!/usr/bin/env bash
# Installs the Debian 12 packages Trail needs to build, run and test, skipping
# whatever is already installed (so a second `make` costs ~0.1 s here).
set -euo pipefail

# The list lives in scripts/packages.txt (the Dockerfile reads it too);
# `make` needs every role. ROLES="build run" narrows it.
ROLES=${ROLES:-build run test}
PKGS=()
while read -r pkg roles; do
  case "$pkg" in '' | '#'*) continue ;; esac
  for r in $roles; do
    case " $ROLES " in *" $r "*) PKGS+=("$pkg"); break ;; esac
  done
done <"$(dirname "$0")/packages.txt"

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: run as root (or install them yourself) and try again" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The postgresql package starts a system cluster on 5432; Trail runs its own
# cluster under .dev/, so the packaged one must not hold the port.
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters -h 2>/dev/null | while read -r ver name port status _; do
    [ "$status" = online ] && pg_ctlcluster "$ver" "$name" stop || true
  done
fi
# Likewise the packaged services of nats-server and prometheus (Trail needs only promtool).
for svc in nats-server prometheus; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
exit 0
