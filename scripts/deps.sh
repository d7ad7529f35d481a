#!/usr/bin/env bash
# Install what hvgate needs to build and test, from Debian's packages; a
# no-op when everything is present. Run as root (or with sudo).
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libcjson-dev libxml2-dev libssl-dev libcurl4-openssl-dev
      libsqlite3-dev libzstd-dev libpq-dev libcmocka-dev libevent-dev nodejs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
