"""A minimal serving loop: one signed, journaled record per decision.

Loads ``models:/NAME@ALIAS`` through ``VerifiedModel`` (which refuses artifacts that differ
from the anchored training record), then scores CSV rows — a header line, then one request
per line, from a file or from stdin as lines arrive — and prints, per row, the prediction,
the decision id and the proof status. Each decision is committed to the local journal
before it is printed; uploads happen in the background (``--wait`` waits for each one).

    python examples/serve.py --model credit-scorer --alias champion --csv applicants.csv
    head -3 applicants.csv | python examples/serve.py --model credit-scorer --wait 10

Exit status: 0 served, 2 the integrity gate refused the model.
"""

from __future__ import annotations

import argparse
import io
import os
import sys

import mlflow
import pandas as pd

from ario_mlflow import IntegrityError, VerifiedModel


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="credit-scorer", help="Registered model name.")
    parser.add_argument("--alias", default="champion", help="Alias to serve.")
    parser.add_argument("--model-uri", help="Any model URI (overrides --model/--alias).")
    parser.add_argument("--csv", metavar="PATH", help="Rows to score (default: stdin).")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="Wait up to this long for each decision's upload (default: do not wait).",
    )
    parser.add_argument(
        "--require-proof",
        action="store_true",
        help="Refuse a model that has no anchored training record at all.",
    )
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="HEX",
        help="Accept training records signed only by this key (repeatable).",
    )
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mlflow.set_tracking_uri(args.tracking_uri)
    uri = args.model_uri or f"models:/{args.model}@{args.alias}"
    source = open(args.csv, encoding="utf-8") if args.csv else sys.stdin  # noqa: SIM115
    try:
        model = VerifiedModel(
            uri,
            require_proof=args.require_proof,
            trusted_keys=tuple(k.lower() for k in args.trusted_key) or None,
        )
    except IntegrityError as exc:  # includes ProofUnavailableError: fail closed
        print(f"refusing to serve {uri}: {exc}", file=sys.stderr)
        return 2
    print(
        f"serving {uri} ({model.model_name}/{model.model_version}), "
        f"artifact_verified={model.artifact_verified}"
    )

    print("row\tprediction\tdecision_id\tproof_status\ttx_id", flush=True)
    header = source.readline()
    for index, line in enumerate(source):  # one request per line, as it arrives
        if not line.strip():
            continue
        row = pd.read_csv(io.StringIO(header + line))
        decision = model.predict(row)
        if args.wait > 0:
            decision.wait_for_anchor(timeout=args.wait)
        print(
            f"{index}\t{decision.prediction[0]}\t{decision.decision_id}\t"
            f"{decision.proof_status}\t{decision.tx_id or '-'}",
            flush=True,
        )
    # Anything not uploaded yet stays in the journal: a short flush runs at exit, and
    # `ar-io-mlflow sync` (or the next process) finishes the rest.
    return 0


if __name__ == "__main__":
    sys.exit(main())
