#!/usr/bin/env bash
# Interop with the reference ar-io-mlflow 0.3.0, both directions (see scripts/interop/run.py).
#
#   scripts/interop-reference.sh [VENV] [--strict] [--keep] [--workdir DIR]
#
# VENV (default .venv-reference, gitignored) gets ar-io-mlflow==0.3.0 from the configured
# package index, with mlflow pinned to the version of our venv: both sides open each
# other's sqlite stores, so their MLflow schemas must match. Our side runs with
# $ARIO_INTEROP_PYTHON (default .venv/bin/python). Exit 0 = every check passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-reference"
if [[ $# -gt 0 && "$1" != --* ]]; then
    VENV="$1"
    shift
fi
OUR_PYTHON="${ARIO_INTEROP_PYTHON:-$ROOT/.venv/bin/python}"
# no MLflow usage telemetry: nothing but 127.0.0.1 and the package index is contacted
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
BASE_PYTHON="${ARIO_INTEROP_BASE_PYTHON:-python3}"

if [[ ! -x "$OUR_PYTHON" ]]; then
    echo "interop: no python at $OUR_PYTHON (set ARIO_INTEROP_PYTHON)" >&2
    exit 2
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
    [[ -x "$VENV/bin/python" ]] || "$BASE_PYTHON" -m venv "$VENV"
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
