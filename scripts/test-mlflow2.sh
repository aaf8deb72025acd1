#!/usr/bin/env bash
# Run the test suite against MLflow 2.22 (the design supports MLflow 2.14+ and 3.x; the main
# environment has MLflow 3). Usage:
#
#   scripts/test-mlflow2.sh [VENV_DIR] [-- PYTEST_ARGS...]      (VENV_DIR: .venv-mlflow2)
#
# Creates VENV_DIR with python3 if it does not exist, installs the package with its test
# extras and MLflow 2.22 in one resolution, then runs pytest from the repository root.
# The Node interop verifier is installed if missing; the HTML report tests also need
# Chromium, which scripts/setup-dev installs.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-mlflow2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    VENV=$1
    shift
fi
[ "${1:-}" = "--" ] && shift

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
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[test]' "${MLFLOW2[@]}"
"$VENV/bin/python" - <<'EOF'
import mlflow

assert mlflow.__version__.startswith("2.22."), mlflow.__version__
print(f"mlflow {mlflow.__version__}")
EOF
if [ ! -d tests/arweave/interop/node_modules ] && command -v npm >/dev/null 2>&1; then
    npm ci --prefix tests/arweave/interop --no-audit --no-fund
fi
echo "installed in $((SECONDS - started)) s"

status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
echo "MLflow 2 suite: exit $status after $((SECONDS - started)) s in total"
exit "$status"
