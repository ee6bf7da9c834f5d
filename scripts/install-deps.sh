#!/usr/bin/env bash
# Installs every Debian package that building and testing Writ needs. Idempotent.
# Usage: scripts/install-deps.sh     (run as root, or with sudo available)
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build ccache clang libclang-rt-14-dev
  antlr4 libantlr4-runtime-dev default-jre-headless
  nlohmann-json3-dev libre2-dev libfmt-dev libboost-dev doctest-dev libssl-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libsqlite3-dev libbenchmark-dev libsimdjson-dev
  python3
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
