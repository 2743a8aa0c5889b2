#!/usr/bin/env bash
# Everything the test suite needs, done only where it is missing; `make test` runs it first.
#
#   1. system packages: Docker, Chromium, git, Python 3.11's venv, npm (for the scanners)
#      and debootstrap (for the stand-in base image); installed with apt-get when run as
#      root (`apt-get update` only when something is missing), otherwise named and refused.
#   2. the project's venv (`make install`: re-installed only when requirements/dev.lock or
#      pyproject.toml changed since the last install), the scanners (`make tools`).
#   3. a running Docker engine and the base image (`make base-image`: pulled when a
#      registry answers, otherwise the debootstrap stand-in is built).
#   4. Chromium starts.
# When everything is in place it changes nothing and takes a few seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

MAKE="${MAKE:-make}"
export DEBIAN_FRONTEND=noninteractive
# The names tests/integration/test_web_ui.py looks for (GitHub's runners ship Google Chrome).
CHROMIUM_NAMES=(chromium chromium-browser google-chrome)

say() { printf 'setup: %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

chromium_path() {
  local name
  for name in "${CHROMIUM_NAMES[@]}"; do
    if have "$name"; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

# Debian packages this machine lacks, one per line.
missing_packages() {
  have git || echo git
  have python3.11 && python3.11 -c 'import ensurepip, venv' 2>/dev/null || echo python3-venv
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || echo ca-certificates
  chromium_path >/dev/null || echo chromium
  # A docker client talking to an engine that already answers needs no local dockerd.
  if ! have docker || ! { docker info >/dev/null 2>&1 || have dockerd; }; then
    echo docker.io
  fi
  # npm only installs the pinned workflow validator; not needed once it is there.
  [[ -e .tools/node_modules/.bin/action-validator ]] || have npm || echo npm
  # The stand-in base image needs root anyway; scripts/build_base_image.sh names it if
  # a non-root machine turns out to need it (no registry answering).
  if is_root; then
    have debootstrap || echo debootstrap
  fi
  # The local image registry the Airflow rebuild tests push to.
  have docker-registry || echo docker-registry
}

mapfile -t packages < <(missing_packages)
if ((${#packages[@]})); then
  if ! is_root; then
    say "missing system packages: ${packages[*]}" >&2
    say "install them as root: apt-get install ${packages[*]}" >&2
    exit 1
  fi
  say "installing ${packages[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
  say "system packages present"
fi

# The venv and the scanners are file targets with stamps: make skips what is up to date.
"$MAKE" --no-print-directory -s install tools install-airflow
say "venv (with Airflow) and scanners up to date"

"$MAKE" --no-print-directory -s base-image

chromium="$(chromium_path)"
if ! version="$("$chromium" --headless --no-sandbox --version 2>/dev/null)"; then
  say "$chromium does not start" >&2
  exit 1
fi
say "browser: $version ($chromium)"
