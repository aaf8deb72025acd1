#!/usr/bin/env bash
# Run the test suite against MLflow 2.22 (the design supports MLflow 2.14+ and 3.x; the main
# environment has MLflow 3). Usage:
#
#   scripts/test-mlflow2.sh [VENV_DIR] [-- PYTEST_ARGS...]      (VENV_DIR: .venv-mlflow2)
#
# Creates VENV_DIR (gitignored) from the `python` on PATH if it does not exist, installs the
# package with its test extras and MLflow 2.22 in one resolution, then runs pytest from the
# repository root. Needs what scripts/setup-dev installs: Node (the interop verifier, which is
# installed here with npm if missing) and, for the HTML report tests, Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-mlflow2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    VENV=$1
    shift
fi
[ "${1:-}" = "--" ] && shift

missing() {
    echo "test-mlflow2: $*" >&2
    exit 2
}

BASE_PYTHON="$(command -v python || command -v python3 || true)"
[ -n "$BASE_PYTHON" ] || missing "no python on PATH (install Python 3.10+)"
command -v node >/dev/null 2>&1 || missing "node is not on PATH (the interop tests need Node 18+; see scripts/setup-dev)"
if [ ! -d tests/arweave/interop/node_modules ] && ! command -v npm >/dev/null 2>&1; then
    missing "npm is not on PATH and tests/arweave/interop/node_modules is missing (run ./scripts/setup-dev)"
fi
browser="${ARIO_MLFLOW_CHROMIUM:-}"  # tests/test_report.py looks for the same names
for name in chromium chromium-browser google-chrome-stable google-chrome; do
    [ -n "$browser" ] || browser="$(command -v "$name" || true)"
done
[ -n "$browser" ] || missing "chromium is not on PATH (the HTML report tests need it; run ./scripts/setup-dev)"

# Pins beside mlflow, both upstream incompatibilities of MLflow 2.22 with newer releases:
# - SQLAlchemy 2.1 removed FallbackAsyncAdaptedQueuePool, which mlflow.store.db.utils
#   imports (every sqlite/SQL store and `mlflow server` fail);
# - opentelemetry-sdk 1.45 checks SimpleSpanProcessor._shutdown, which MLflow 2's span
#   processor never sets (every trace fails to end).
MLFLOW2=(
    'mlflow==2.22.*'
    'sqlalchemy<2.1'
    'opentelemetry-sdk<1.45'
    'opentelemetry-api<1.45'
)

started=$SECONDS
if [ ! -x "$VENV/bin/python" ] && ! "$BASE_PYTHON" -m venv "$VENV" >/dev/null; then
    missing "could not create $VENV with $BASE_PYTHON -m venv (Debian/Ubuntu: apt-get install python3-venv)"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip \
    || missing "could not upgrade pip in $VENV (is the package index reachable?)"
"$VENV/bin/python" -m pip install --quiet -e '.[test]' "${MLFLOW2[@]}" \
    || missing "installing the package with MLflow 2.22 into $VENV failed (see pip's output above)"
"$VENV/bin/python" - <<'EOF'
import mlflow

assert mlflow.__version__.startswith("2.22."), mlflow.__version__
print(f"mlflow {mlflow.__version__}")
EOF
if [ ! -d tests/arweave/interop/node_modules ]; then
    npm ci --prefix tests/arweave/interop --no-audit --no-fund
fi
echo "installed in $((SECONDS - started)) s"

status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
echo "MLflow 2 suite: exit $status after $((SECONDS - started)) s in total"
exit "$status"
