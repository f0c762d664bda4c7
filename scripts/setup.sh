#!/usr/bin/env bash
# Install what recon and its tests need on a fresh Debian/Ubuntu machine (run as root):
# the lab's tools (iproute2, nftables, procps), the reference tools the tests and
# benchmarks compare against (iputils ping, tcpdump, tshark, fping, nmap), and a
# virtualenv in .venv with recon and its test and cluster (Dask) extras.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A pkg=([ip]=iproute2 [nft]=nftables [sysctl]=procps [setpriv]=util-linux [ping]=iputils-ping
                [tcpdump]=tcpdump [tshark]=tshark [fping]=fping [nmap]=nmap [python3]=python3
                [groff]=groff-base)  # groff: tests/test_cli_docs.py renders the man page
missing=()
for tool in "${!pkg[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg[$tool]}"); done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to install: ${missing[*]}" >&2; exit 3; fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test,cluster]'
echo "setup: ready (.venv/bin/recon)" >&2
