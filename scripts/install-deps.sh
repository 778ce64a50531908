#!/usr/bin/env bash
# Installs the Debian packages owlore builds and tests with (Debian 12).
# Safe to run again; uses sudo when not root.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev libcjson-dev
      libcriterion-dev liburing-dev libpcre2-dev libzstd-dev clang-format
      libopenmpi-dev openmpi-bin)
if [ "${OWLORE_WITH_CLANG:-0}" = 1 ]; then pkgs+=(clang libclang-rt-14-dev); fi
if [ "${OWLORE_WITH_CHROMIUM:-0}" = 1 ]; then pkgs+=(chromium); fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "install-deps: all packages present"; exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
