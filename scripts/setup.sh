#!/usr/bin/env bash
# Installs the Debian 12 packages coop needs, only those missing. Used by test.sh and demo.sh.
# Usage: scripts/setup.sh [extra-package ...]
set -euo pipefail
packages=(g++ cmake make libboost1.81-dev libboost-test1.81-dev "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
