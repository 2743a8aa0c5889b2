#!/usr/bin/env bash
# Build a stand-in for the Docker Hub base image the bento expects (python:<ver>-slim).
#
# This is the air-gapped build path: on a machine whose Docker engine cannot pull
# from any registry but that can reach a Debian mirror and PyPI, it makes the base
# image locally with debootstrap and `docker import`, under the exact tag
# `bentoml containerize` writes into the generated Dockerfile's FROM line. The
# bentofile stays unmodified and production builds keep pulling the real image.
#
# What the stand-in differs in (only what the build needs):
#   * Debian bookworm's python3 (3.11) in /usr/bin instead of python.org's in /usr/local.
#   * It trusts the build machine's CA bundle (copied in, SSL_CERT_FILE / PIP_CERT set)
#     so pip and uv inside `docker build` reach PyPI through a TLS-inspecting proxy.
#   * PIP_BREAK_SYSTEM_PACKAGES=1: Debian marks its python as externally managed
#     (PEP 668); BentoML's Dockerfile pip-installs uv into it before making its venv.
#
# Usage: scripts/build_base_image.sh [--force] [--stand-in] [TAG]
#   TAG        defaults to python:<docker.python_version of bentofile.yaml, else 3.11>-slim
#   --force    rebuild even when TAG already exists (FORCE=1 does the same)
#   --stand-in do not try `docker pull TAG` first (STAND_IN=1 does the same); by default
#              a machine that can reach the registry gets the real image, and one that
#              cannot (the pull fails or takes over PULL_TIMEOUT_S, 60) gets the stand-in
# Needs: root, debootstrap, a running Docker engine (scripts/start_docker.sh).
# The Debian mirror is read from this machine's apt sources, never hard-coded.
set -euo pipefail

SUITE=bookworm
DEBIAN_PYTHON=3.11 # bookworm's python3
FORCE="${FORCE:-0}"
STAND_IN="${STAND_IN:-0}"
# A registry that answers serves a slim image well within this; an unreachable one may hang.
PULL_TIMEOUT_S="${PULL_TIMEOUT_S:-60}"
TAG=""
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --stand-in) STAND_IN=1 ;;
    -h | --help)
      sed -n '2,24p' "$0"
      exit 0
      ;;
    *) TAG="$arg" ;;
  esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "$TAG" ]]; then
  py_version="$(sed -nE 's/^[[:space:]]+python_version:[[:space:]]*"?([0-9.]+)"?.*/\1/p' \
    "$repo_root/bentofile.yaml" 2>/dev/null | head -n 1 || true)"
  TAG="python:${py_version:-$DEBIAN_PYTHON}-slim"
fi
if [[ "$TAG" == python:* && "$TAG" != "python:${DEBIAN_PYTHON}"* ]]; then
  echo "$TAG asks for a python other than Debian $SUITE's $DEBIAN_PYTHON" >&2
  exit 1
fi

if [[ "$FORCE" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG already present (--force to rebuild)"
  exit 0
fi

if [[ "$STAND_IN" != 1 && "$FORCE" != 1 ]] &&
  timeout "$PULL_TIMEOUT_S" docker pull "$TAG" >/dev/null 2>&1; then
  echo "pulled $TAG from its registry"
  exit 0
fi
echo "$TAG cannot be pulled here: building the stand-in"
if ! command -v debootstrap >/dev/null || [[ $(id -u) -ne 0 ]]; then
  echo "the stand-in needs root and debootstrap (make setup installs it as root)" >&2
  exit 1
fi

# The first Debian mirror (not the security archive) configured for apt here.
apt_mirror() {
  local uri=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri="$(awk '
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print u; exit } }
    ' /etc/apt/sources.list.d/*.sources)"
  fi
  if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
    uri="$(awk '$1 == "deb" && $0 !~ /security/ {
      for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
  fi
  echo "$uri"
}

MIRROR="${DEBIAN_MIRROR:-$(apt_mirror)}"
if [[ -z "$MIRROR" ]]; then
  echo "no Debian mirror found in /etc/apt/sources*; set DEBIAN_MIRROR" >&2
  exit 1
fi
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

rootfs="$(mktemp -d /var/tmp/wineq-base.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

echo "debootstrap $SUITE from $MIRROR into $rootfs"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,ca-certificates \
  "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
  tail -n 30 "$rootfs.log" >&2
  exit 1
}
rm -f "$rootfs.log"

# Trim what a slim image leaves out: package caches, apt lists, docs, man pages, locales.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} +
# python:*-slim images answer to `python` as well as `python3`.
ln -sf python3 "$rootfs/usr/bin/python"
cp "$CA_BUNDLE" "$rootfs/usr/local/share/wineq-build-ca.crt"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV SSL_CERT_FILE=/usr/local/share/wineq-build-ca.crt' \
  --change 'ENV PIP_CERT=/usr/local/share/wineq-build-ca.crt' \
  --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
  --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
  --change 'CMD ["python3"]' \
  --message "stand-in for $TAG: debootstrap $SUITE minbase + python3" \
  - "$TAG"

docker run --rm "$TAG" python3 -c 'import ssl, sys, venv; print(sys.version)'
docker image ls "$TAG"
