"""``python -m ario_mlflow.localgw``: the gateway without the CLI's dependencies.

Same options and ready line as ``ar-io-mlflow gateway``; used by
:meth:`LocalGateway.spawn <ario_mlflow.localgw.LocalGateway.spawn>`.
"""

from __future__ import annotations

import argparse
import sys

from ario_mlflow.errors import ArioError
from ario_mlflow.localgw.local_gateway import DEFAULT_FINALIZE_AFTER
from ario_mlflow.localgw.runner import (
    FAULT_OPTION_HELP,
    build_gateway,
    combine_faults,
    serve,
)
from ario_mlflow.localgw.server import DEFAULT_MAX_ITEM_BYTES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ario_mlflow.localgw")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key-bits", type=int, default=4096)
    parser.add_argument("--finalize-after", type=float, default=DEFAULT_FINALIZE_AFTER)
    parser.add_argument("--max-item-bytes", type=int, default=DEFAULT_MAX_ITEM_BYTES)
    parser.add_argument("--fault", action="append", default=[], help=FAULT_OPTION_HELP)
    parser.add_argument("--faults", dest="faults_json", default=None)
    parser.add_argument("--fault-seed", type=int, default=None)
    parser.add_argument("--allow-remote", action="store_true")
    parser.add_argument("--log-requests", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse options, serve until SIGINT/SIGTERM; exit 2 on a configuration error."""
    args = _parser().parse_args(argv)
    try:
        gateway = build_gateway(
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            key_bits=args.key_bits,
            finalize_after=args.finalize_after,
            faults=combine_faults(args.faults_json, args.fault),
            fault_seed=args.fault_seed,
            allow_remote=args.allow_remote,
            max_item_bytes=args.max_item_bytes,
            log=(lambda line: print(line, file=sys.stderr, flush=True))
            if args.log_requests
            else None,
        )
        return serve(
            gateway,
            announce=lambda line: print(line, flush=True),
            describe=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (ArioError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
