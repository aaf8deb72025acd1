#!/usr/bin/env bash
# Interop with the reference ar-io-mlflow 0.3.0, both directions (see scripts/interop/run.py).
#
#   scripts/interop-reference.sh [VENV] [--strict] [--keep] [--workdir DIR]
#
# Our side runs with the active Python environment (the `python` on PATH, as
# scripts/setup-dev installs into it; ARIO_INTEROP_PYTHON overrides). VENV (default
# .venv-reference, gitignored) is created from that Python if needed and gets
# ar-io-mlflow==0.3.0 from the configured package index, with mlflow pinned to our version:
# both sides open each other's sqlite stores, so their MLflow schemas must match.
# Exit 0 = every check passed, 1 = a check failed, 2 = a side could not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-reference"
if [[ $# -gt 0 && "$1" != --* ]]; then
    VENV="$1"
    shift
fi

missing() {
    echo "interop: $*" >&2
    exit 2
}

if [[ -n "${ARIO_INTEROP_PYTHON:-}" ]]; then
    OUR_PYTHON="$ARIO_INTEROP_PYTHON"
    [[ -x "$OUR_PYTHON" ]] || missing "ARIO_INTEROP_PYTHON=$OUR_PYTHON is not an executable"
else
    OUR_PYTHON="$(command -v python || command -v python3 || true)"
    [[ -n "$OUR_PYTHON" ]] || missing "no python on PATH (activate the virtualenv ./scripts/setup-dev installed into)"
fi
# no MLflow usage telemetry: nothing but 127.0.0.1 and the package index is contacted
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
BASE_PYTHON="${ARIO_INTEROP_BASE_PYTHON:-$OUR_PYTHON}"

# What our side imports (scripts/interop/mint_ours.py): the package and its test extras.
for module in ario_mlflow mlflow sklearn pandas; do
    "$OUR_PYTHON" -c "import $module" 2>/dev/null \
        || missing "$OUR_PYTHON cannot import $module (run ./scripts/setup-dev in this environment)"
done
OURS_FROM="$("$OUR_PYTHON" -c 'import ario_mlflow, pathlib; print(pathlib.Path(ario_mlflow.__file__).resolve().parent)')"
if [[ "$OURS_FROM" != "$ROOT/src/ario_mlflow" ]]; then
    echo "interop: warning: $OUR_PYTHON imports ario_mlflow from $OURS_FROM, not from this checkout" >&2
fi
MLFLOW_VERSION="$("$OUR_PYTHON" -c 'import importlib.metadata as m; print(m.version("mlflow"))')"

reference_ready() {
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" - "$MLFLOW_VERSION" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
assert m.version("ar-io-mlflow") == "0.3.0", m.version("ar-io-mlflow")
assert m.version("mlflow") == sys.argv[1], m.version("mlflow")
import ario_mlflow.verify, sklearn  # noqa: F401,E401
PY
}

if ! reference_ready; then
    echo "interop: installing ar-io-mlflow==0.3.0 (mlflow==$MLFLOW_VERSION) into $VENV"
    if [[ ! -x "$VENV/bin/python" ]] && ! "$BASE_PYTHON" -m venv "$VENV" >/dev/null; then
        missing "could not create $VENV with $BASE_PYTHON -m venv (Debian/Ubuntu: apt-get install python3-venv)"
    fi
    if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "ar-io-mlflow==0.3.0" "mlflow==$MLFLOW_VERSION" scikit-learn \
        >"$VENV/interop-install.log" 2>&1; then
        tail -n 30 "$VENV/interop-install.log" >&2
        echo "interop: installing the reference failed (log: $VENV/interop-install.log)" >&2
        exit 2
    fi
    if ! reference_ready; then
        echo "interop: $VENV does not hold ar-io-mlflow 0.3.0 with mlflow $MLFLOW_VERSION" >&2
        exit 2
    fi
fi

exec "$OUR_PYTHON" "$ROOT/scripts/interop/run.py" --reference-python "$VENV/bin/python" "$@"
