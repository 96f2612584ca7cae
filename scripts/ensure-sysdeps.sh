#!/usr/bin/env bash
# Install the Debian packages mosfw builds and tests with, where missing.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

# command-or-file -> package
declare -A NEED=(
  [/usr/include/pcap/pcap.h]=libpcap-dev
  [gcc]=gcc
  [make]=make
  [tshark]=tshark
  [capinfos]=tshark
  [tcpdump]=tcpdump
  [tcptrace]=tcptrace
  [bro-cut]=bro-aux
  [ip]=iproute2
  [nft]=nftables
  [ethtool]=ethtool
  [nginx]=nginx-light
  [curl]=curl
  [iperf3]=iperf3
  [dnsmasq]=dnsmasq
  [dig]=bind9-dnsutils
  [ping]=iputils-ping
  [editcap]=tshark
  [mergecap]=tshark
  [gzip]=gzip
  [zstd]=zstd
  [xz]=xz-utils
  [lz4]=lz4
  [tcpreplay]=tcpreplay
  [setpriv]=util-linux
  [clang]=clang
  [clang-format]=clang-format
  [/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a]=libclang-rt-14-dev
  [dot]=graphviz
  [prometheus]=prometheus
  [redis-server]=redis-server
  [redis-cli]=redis-tools
)
missing=()
for what in "${!NEED[@]}"; do
  if [[ $what == /* ]]; then
    [[ -e $what ]] || missing+=("${NEED[$what]}")
  else
    command -v "$what" >/dev/null 2>&1 || [[ -x /usr/sbin/$what ]] || missing+=("${NEED[$what]}")
  fi
done
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
python3 -c 'import sysconfig, os; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
  >/dev/null 2>&1 || missing+=(python3-dev)

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "mosfw: installing system packages: ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "mosfw: missing packages (${missing[*]}) and not root: install them with apt-get" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
