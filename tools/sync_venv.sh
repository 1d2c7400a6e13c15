#!/usr/bin/env bash
# Make .venv hold exactly what requirements.lock says (hash-checked), then zsar itself,
# editable. `make` runs it whenever the lock or pyproject.toml is newer than .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# uv reads no pip configuration. Where pip is set to take packages from extra indexes
# (a mirror of the registry on local disk, as on our build machines, torch's CUDA wheels
# included), uv gets the same ones, and may take a locked version from any index that has
# it: every file must still match the lock's hashes, so what is installed is the same.
if [ -z "${UV_EXTRA_INDEX_URL:-}" ]; then
    mirrors=${PIP_EXTRA_INDEX_URL:-$("$BIN/python" -m pip config get global.extra-index-url 2>/dev/null || true)}
    if [ -n "$mirrors" ]; then
        export UV_EXTRA_INDEX_URL=$mirrors UV_INDEX_STRATEGY=unsafe-best-match
    fi
fi

"$BIN/uv" pip sync --python "$BIN/python" --require-hashes requirements.lock
# The build backend is the lock's setuptools, already in .venv: no download, no other version.
"$BIN/uv" pip install --python "$BIN/python" --no-deps --no-build-isolation --editable .
