#!/usr/bin/env bash
# Run checkov (PyPI) from its own virtualenv, .venv-checkov, created on first use.
# checkov 3.x pins packaging<24 while pulumi needs packaging>=26, so it cannot share .venv
# (pip would downgrade one or the other). Usage: bash scripts/checkov.sh -d DIR --framework kubernetes
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CHECKOV_VENV:-$root/.venv-checkov}"
if [[ ! -x "$venv/bin/checkov" ]]; then
  echo "installing checkov into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --require-hashes -r "$root/requirements/checkov.lock" >&2
fi
exec "$venv/bin/checkov" "$@"
