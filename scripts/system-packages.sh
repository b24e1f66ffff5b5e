#!/usr/bin/env bash
# Install the Debian packages the tests need when they are missing (as root), or say exactly
# what to install. Used by `make test` and by .ci/run, so a fresh machine needs nothing else.
set -euo pipefail

# the list (and why each is needed) is scripts/system-packages.txt, shared with the Dockerfile:
# the image installs its `runtime` packages, the tests need all of them
LIST="$(dirname "${BASH_SOURCE[0]}")/system-packages.txt"
mapfile -t PACKAGES < <(sed -e 's/#.*//' "$LIST" | awk 'NF { print $1 }')
if [[ ${1:-} == --list ]]; then  # what the tests need (tests/stacks/test_stacks_docker.py)
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

if ! command -v dpkg-query >/dev/null; then
  echo "not a Debian/Ubuntu system: install redis-server, promtool (prometheus), tesseract" \
       "(eng), ocrmypdf and poppler (pdftoppm) with your package manager" >&2
  exit 0
fi
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian may start a system redis on 6379; the tests start their own on free ports
service redis-server stop >/dev/null 2>&1 || true
