"""THIS project verifies records minted by the running reference 0.3.0.

Per record, with our public API only:

* the envelope bytes parse strictly and are exactly our own JCS of the envelope (the two
  canonicalizers agree byte for byte);
* ``verify_record(envelope, payload_bytes)`` — signature, spec version, payload hash, the
  subject the record must be about, and the issuer pinned to the reference's signing key
  (derived from its seed, not read back from the records);
* ``full_verify(envelope, mlflow_client=...)`` — the operator flow against the
  reference's own MLflow store: its 0.3.0 witness paths, tags and traces, plus the chain
  link each record must carry (registration -> training TX, promotion and predictions ->
  registration TX, datasets -> GENESIS).

Tampered copies must be rejected, and so must a genuine record pinned to another key.
Run by ``run.py``; ``python verify_theirs.py RECORDS_DIR OUT_JSON`` runs it on its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import REJECT, read_manifest, read_records, verdict

VERIFIED_BY = "ours"
#: A well-formed Ed25519 public key that signed none of these records.
OTHER_KEY = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"


def _summary(result: dict[str, Any]) -> str:
    parts = []
    for name, check in result.items():
        if not isinstance(check, dict) or check.get("ok") is not False:
            continue
        why = " ".join(str(check[k]) for k in ("reason", "detail") if check.get(k))
        parts.append(f"{name}={check.get('ok')}{(' ' + why) if why else ''}")
    return "; ".join(parts)


def _parsed(record: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    from ario_mlflow.errors import EnvelopeParseError
    from ario_mlflow.proof.canonical import canonical_json
    from ario_mlflow.proof.envelope import parse_json_object

    try:
        envelope = parse_json_object(record["envelope_bytes"])
    except EnvelopeParseError as exc:
        return None, f"envelope does not parse: {exc}"
    if canonical_json(envelope) != record["envelope_bytes"] and not record["tamper"]:
        return envelope, "reference JCS bytes differ from ours"
    return envelope, ""


def verify(records_dir: Path, out: Path | None = None) -> list[dict[str, Any]]:
    """Every reference record through our verifiers; the table rows (also to ``out``)."""
    import mlflow

    from ario_mlflow.verify import full_verify, verify_record

    manifest = read_manifest(records_dir)
    trusted = (manifest["public_key"],)
    client = mlflow.MlflowClient(tracking_uri=manifest["tracking_uri"])
    rows = []
    for record in read_records(records_dir):
        envelope, problem = _parsed(record)
        if envelope is None:
            rows.append(verdict(record, VERIFIED_BY, "verify_record", False, problem))
            continue
        result = verify_record(
            envelope,
            record["payload_bytes"],
            trusted_keys=trusted,
            expected_subject=record.get("expected_subject"),
        )
        ok = result["overall"] and result["issuer"]["ok"] is True and not problem
        detail = "; ".join(p for p in (problem, _summary(result)) if p)
        rows.append(verdict(record, VERIFIED_BY, "verify_record", ok, detail))
        if record["tamper"]:
            continue
        result = full_verify(
            envelope,
            mlflow_client=client,
            trusted_keys=trusted,
            expected_subject=record.get("expected_subject"),
            expected_previous=record.get("expected_previous"),
        )
        rows.append(
            verdict(record, VERIFIED_BY, "full_verify", result["overall"], _summary(result))
        )
        if record["label"] == "training":
            impostor = verify_record(envelope, record["payload_bytes"], trusted_keys=(OTHER_KEY,))
            rows.append(
                verdict(
                    {**record, "label": "training-pinned-to-other-key", "expect": REJECT},
                    VERIFIED_BY,
                    "verify_record",
                    impostor["overall"],
                    _summary(impostor),
                )
            )
    if out is not None:
        out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    verify(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
