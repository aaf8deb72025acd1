"""Payload builders reproduce the reference's records byte for byte, and validate input."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.proof import payloads
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.hashing import sha256_hex
from tests.conftest import VECTORS_DIR

ORIGINAL = VECTORS_DIR / "original-0.3.0"


def _payload(name: str) -> tuple[bytes, dict[str, Any]]:
    data = (ORIGINAL / name / "payload.bin").read_bytes()
    return data, json.loads(data)


def test_training_payload_rebuilds_reference_bytes() -> None:
    data, original = _payload("training")
    rebuilt = payloads.training_payload(
        run_id=original["run_id"],
        params=original["params"],
        metrics={"accuracy": 0.97333333333, "weird": 1 / 3},
        artifact_checksums=original["artifact_checksums"],
        source_name=original["source_name"],
        git_commit=original["git_commit"],
        dataset_inputs=original["dataset_inputs"],
    )
    assert canonical_json(rebuilt) == data


def test_a_payload_without_history_keeps_the_0_3_0_keys_and_bytes() -> None:
    """Without ``history`` no new key appears; with it, the 0.3.0 keys are unchanged."""
    data, original = _payload("training")
    common: dict[str, Any] = {
        "run_id": original["run_id"],
        "params": original["params"],
        "metrics": {"accuracy": 0.97333333333, "weird": 1 / 3},
        "artifact_checksums": original["artifact_checksums"],
        "source_name": original["source_name"],
        "git_commit": original["git_commit"],
        "dataset_inputs": original["dataset_inputs"],
    }
    plain = payloads.training_payload(**common)
    assert payloads.METRICS_EXACT not in plain
    assert payloads.METRIC_HISTORY not in plain
    extended = payloads.training_payload(
        **common, history={"accuracy": [(0, 5, 0.97333333333)], "weird": [(0, 5, 1 / 3)]}
    )
    assert extended[payloads.METRICS_EXACT] == {"accuracy": 0.97333333333, "weird": 1 / 3}
    assert extended[payloads.METRIC_HISTORY] == {
        "accuracy": [[0, 5, 0.97333333333]],
        "weird": [[0, 5, 1 / 3]],
    }
    old_keys = {
        k: v
        for k, v in extended.items()
        if k not in (payloads.METRICS_EXACT, payloads.METRIC_HISTORY)
    }
    assert canonical_json(old_keys) == data


def test_metric_history_is_ordered_by_step_timestamp_value() -> None:
    points = [(2, 10, 0.5), (0, 30, 0.1), (1, 20, 0.3), (1, 10, 0.4), (1, 10, 0.2), (0, 5, 0.9)]
    expected = [[0, 5, 0.9], [0, 30, 0.1], [1, 10, 0.2], [1, 10, 0.4], [1, 20, 0.3], [2, 10, 0.5]]
    assert payloads.ordered_metric_history({"loss": points}) == {"loss": expected}
    assert payloads.ordered_metric_history({"loss": list(reversed(points))}) == {"loss": expected}
    assert payloads.ordered_metric_history({"empty": []}) == {"empty": []}


def test_metric_history_writes_non_finite_values_as_strings() -> None:
    points = [
        (0, 1, math.nan),
        (0, 1, math.inf),
        (0, 1, 0.5),
        (0, 1, -math.inf),
        (0, 1, math.nan),
    ]
    history = payloads.ordered_metric_history({"loss": points})
    assert history == {
        "loss": [
            [0, 1, "-Infinity"],
            [0, 1, 0.5],
            [0, 1, "Infinity"],
            [0, 1, "NaN"],
            [0, 1, "NaN"],
        ]
    }
    assert canonical_json(history) == (
        b'{"loss":[[0,1,"-Infinity"],[0,1,0.5],[0,1,"Infinity"],[0,1,"NaN"],[0,1,"NaN"]]}'
    )
    assert payloads.exact_metrics({"a": math.nan, "b": -math.inf}) == {"a": "NaN", "b": "-Infinity"}


def test_exact_metrics_and_history_canonical_bytes() -> None:
    """Exact values in their shortest round-trip form, where ``metrics`` rounds them away."""
    metrics = {"acc": 0.1 + 0.2, "tiny": 4e-7, "big": 1e21, "whole": 3.0, "neg": -0.0}
    payload = payloads.training_payload(
        run_id="r",
        params={},
        metrics=metrics,
        artifact_checksums={},
        source_name="",
        git_commit="",
        dataset_inputs=[],
        history={"acc": [(7, 1700000000123, 0.1 + 0.2), (0, 1700000000000, 1 / 3)]},
    )
    data = canonical_json(payload)
    assert b'"metrics":{"acc":0.3,"big":1e+21,"neg":0,"tiny":0,"whole":3}' in data
    assert (
        b'"metrics_exact":{"acc":0.30000000000000004,"big":1e+21,"neg":0,"tiny":4e-7,"whole":3}'
    ) in data
    assert (
        b'"metric_history":{"acc":[[0,1700000000000,0.3333333333333333],'
        b"[7,1700000000123,0.30000000000000004]]}"
    ) in data
    shifted = payloads.exact_metrics({**metrics, "acc": 0.1 + 0.2 + 1e-9})
    assert canonical_json(shifted) != canonical_json(payloads.exact_metrics(metrics))
    assert json.loads(data)["metrics_exact"]["acc"] == 0.1 + 0.2  # round-trips exactly


@pytest.mark.parametrize(
    "point",
    [(0, 1, "0.5"), (0, 1, True), (0, 1, None), (0.5, 1, 1.0), (0, "1", 1.0), (0, 1)],
)
def test_bad_history_points_name_the_metric(point: Any) -> None:
    with pytest.raises(ValueError, match="'loss'"):
        payloads.ordered_metric_history({"loss": [point]})


def test_artifact_path_is_recorded_when_known() -> None:
    payload = payloads.training_payload(
        run_id="r",
        params={},
        metrics={},
        artifact_checksums={},
        source_name="",
        git_commit="",
        dataset_inputs=[],
        artifact_path="classifier",
    )
    assert payload["artifact_path"] == "classifier"


def test_dataset_entries_and_event_rebuild_reference_bytes() -> None:
    data, original = _payload("dataset-standalone")
    _, training = _payload("training")
    (entry,) = training["dataset_inputs"]
    assert canonical_json(payloads.dataset_payload(entry)) == data
    assert original["event_type"] == "dataset"


def test_dataset_entry_and_reference_examples() -> None:
    schema = '{"mlflow_colspec":[{"type":"long","name":"a"}]}'
    assert payloads.schema_hash(schema) == (
        "8e640ed33da7a4f30968be9a7df89ec87f27dc46ad12e817a6b6abd30dc2068a"
    )
    assert payloads.schema_hash('{ "mlflow_colspec" : [ {"name":"a", "type":"long"} ] }') == (
        payloads.schema_hash(schema)
    )
    assert payloads.schema_hash("not json") == sha256_hex(b"not json")
    assert payloads.schema_hash("") == payloads.schema_hash(None) == ""
    entry = payloads.dataset_entry(
        name="train_q1",
        source='{"uri": "s3://b/train.csv"}',
        source_type="s3",
        digest="abc123",
        schema=schema,
        context="training",
    )
    assert sha256_hex(canonical_json(payloads.dataset_payload(entry))) == (
        "b8106ae91ca607fe6c2c221d7e19e7b31121c3fe9f535785dd531569c5f023af"
    )


def test_dataset_entries_sort_independently_of_logging_order() -> None:
    a = {"name": "b", "source": "s", "context": "training", "digest": "1"}
    b = {"name": "a", "source": "s", "context": None, "digest": "2"}
    c = {"name": "a", "source": "s", "context": "validation", "digest": "0"}
    assert (
        payloads.sorted_dataset_entries([a, b, c])
        == payloads.sorted_dataset_entries([c, a, b])
        == [b, c, a]
    )


def test_registration_promotion_prediction_rebuild_reference_bytes() -> None:
    data, original = _payload("registration")
    rebuilt = payloads.registration_payload(
        model_name="iris",
        model_version=1,
        source_run_id=original["source_run_id"],
        source=original["source"],
        artifact_verified=True,
        artifact_hash=original["artifact_hash"],
    )
    assert canonical_json(rebuilt) == data

    data, original = _payload("promotion")
    rebuilt = payloads.promotion_payload(
        model_name="iris", model_version="1", from_stage="None", to_stage="Staging"
    )
    assert canonical_json(rebuilt) == data

    for name in ("prediction-0", "prediction-1"):
        data, original = _payload(name)
        rebuilt = payloads.prediction_payload(
            decision_id=original["decision_id"],
            model_name="iris",
            model_version="1",
            run_id=original["run_id"],
            model_uri="models:/iris/1",
            input_hash=original["input_hash"],
            output_hash=original["output_hash"],
            latency_ms=original["latency_ms"] + 0.001,
            artifact_verified=True,
            snapshot={"mlflow_trace_id": original["mlflow_trace_id"]},
        )
        assert canonical_json(rebuilt) == data


def test_structural_keys_win_over_metadata() -> None:
    payload = payloads.promotion_payload(
        model_name="m",
        model_version=2,
        from_stage="None",
        to_stage="Production",
        snapshot={"to_stage": "Archived", "ticket": "CHG-1"},
    )
    assert payload["to_stage"] == "Production"
    assert payload["ticket"] == "CHG-1"


def test_prediction_artifact_verified_is_true_or_null() -> None:
    common: dict[str, Any] = {
        "decision_id": "d",
        "model_name": "m",
        "model_version": "1",
        "run_id": "r",
        "model_uri": "u",
        "input_hash": "i",
        "output_hash": "o",
        "latency_ms": 1.234567,
    }
    assert (
        payloads.prediction_payload(**common, artifact_verified=False)["artifact_verified"] is None
    )
    assert (
        payloads.prediction_payload(**common, artifact_verified=True)["artifact_verified"] is True
    )
    assert payloads.prediction_payload(**common, artifact_verified=None)["latency_ms"] == 1.23


def test_alias_payload() -> None:
    payload = payloads.alias_payload(
        model_name="m", alias="champion", model_version=3, previous_version=None
    )
    assert payload == {
        "event_type": "alias_changed",
        "model_name": "m",
        "alias": "champion",
        "model_version": "3",
        "previous_version": None,
    }


@pytest.mark.parametrize(
    ("metrics", "name"),
    [
        ({"loss": float("nan")}, "loss"),
        ({"ok": 1.0, "auc": float("inf")}, "auc"),
        ({"x": "1"}, "x"),
        ({"b": True}, "b"),
    ],
)
def test_bad_metrics_name_the_key(metrics: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=repr(name)):
        payloads.check_metrics(metrics)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_sql_stores_infinity_is_refused_like_infinity(sign: float) -> None:
    """MLflow's SQL stores save +/-inf as +/-sys.float_info.max and read that back."""
    with pytest.raises(ValueError, match=r"'loss'.*infinity"):
        payloads.check_metrics({"ok": 1.0, "loss": sign * sys.float_info.max})


def test_large_finite_metrics_are_not_refused() -> None:
    below = math.nextafter(sys.float_info.max, 0.0)
    payloads.check_metrics({"a": below, "b": -below, "c": 1e308, "d": 5e-324, "e": 0})


def test_bad_metadata_names_the_key() -> None:
    with pytest.raises(ValueError, match="'threshold'"):
        payloads.check_metadata({"ok": 1, "threshold": float("nan")})
    with pytest.raises(ValueError, match="'when'"):
        payloads.check_metadata({"when": object()})
    payloads.check_metadata({"fine": {"nested": [1, "a", None]}})


def test_subjects() -> None:
    assert payloads.run_subject("r") == {"type": "mlflow_run", "run_id": "r"}
    assert payloads.run_subject("r", "sqlite:///x")["tracking_uri"] == "sqlite:///x"
    assert payloads.model_version_subject("m", 3) == {
        "type": "mlflow_model_version",
        "name": "m",
        "version": "3",
    }
    assert "trace_id" not in payloads.prediction_subject("d", "r", None)
    assert payloads.prediction_subject("d", "r", "tr-1")["trace_id"] == "tr-1"
    assert payloads.dataset_subject("n", "d") == {
        "type": "mlflow_dataset",
        "name": "n",
        "digest": "d",
    }


def test_original_vectors_exist() -> None:
    assert Path(ORIGINAL).is_dir()
