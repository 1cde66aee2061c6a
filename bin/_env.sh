# Shared by bin/run and bin/test: find Python 3.11, then install exactly the locked set (uv.lock,
# with the dev extra) into .venv. uv itself is pinned by hash in bin/uv-requirements.txt and lives
# in .tools/, outside the environment it manages.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "glucast needs Python 3.11 (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi

uv_stamp=.tools/.uv-requirements
uv_wanted="$(sha256sum bin/uv-requirements.txt | cut -d' ' -f1)"
if [ ! -x .tools/bin/uv ] || [ ! -f "$uv_stamp" ] || [ "$(cat "$uv_stamp")" != "$uv_wanted" ]; then
  rm -rf .tools
  "$PYTHON" -m venv .tools
  .tools/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
    --no-deps --only-binary :all: -r bin/uv-requirements.txt
  echo "$uv_wanted" > "$uv_stamp"
fi

# --locked: refuse to run when uv.lock no longer matches pyproject.toml instead of re-resolving,
# so every machine gets the set that was tested. sync is exact: anything installed into .venv by
# hand is removed again. It is a no-op (well under a second, no network) when nothing changed.
export UV_PYTHON="$PYTHON" UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="$PWD/.venv"
.tools/bin/uv sync --locked --extra dev --quiet
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p var
