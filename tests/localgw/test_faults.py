"""Fault injection: each mode, per route family, set at start or changed at runtime."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.arweave.signers import Ed25519Signer
from ario_mlflow.localgw import FAMILIES, FaultSpec, LocalGateway
from ario_mlflow.localgw.faults import FaultPlan, parse_faults
from ario_mlflow.localgw.runner import combine_faults, parse_fault_option
from tests.localgw._support import make_item, upload

# --- the fault model --------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"fail_rate": 1.5},
        {"fail_rate": -0.1},
        {"fail_next": -1},
        {"fail_next": 1.5},
        {"status": 200},
        {"status": 600},
        {"status": True},
        {"latency": -1},
        {"latency": float("nan")},
        {"retry_after": -2},
        {"blackhole": "yes"},
        {"unknown": 1},
    ],
)
def test_bad_fault_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message is checked elsewhere)
        FaultSpec.from_mapping(options)


def test_unknown_family_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown route family"):
        parse_faults({"uploads": {}})


def test_all_expands_and_specific_families_win() -> None:
    specs = parse_faults({"read": {"latency": 1}, "all": {"fail_rate": 0.5}})
    assert set(specs) == set(FAMILIES)
    assert specs["read"].latency == 1
    assert specs["read"].fail_rate == 0.0
    assert specs["upload"].fail_rate == 0.5


def test_fail_next_counts_down_then_rate_applies() -> None:
    plan = FaultPlan({"upload": {"fail_next": 2, "status": 429}}, seed=1)
    statuses = [plan.decide("upload").fail_status for _ in range(4)]
    assert statuses == [429, 429, None, None]
    assert plan.decide("read").fail_status is None
    assert plan.snapshot() == {}  # nothing left active


def test_retry_after_defaults() -> None:
    assert FaultSpec(status=429).header_retry_after() == "1"
    assert FaultSpec(status=503).header_retry_after() is None
    assert FaultSpec(status=503, retry_after=2.5).header_retry_after() == "3"


def test_cli_fault_syntax() -> None:
    assert parse_fault_option("upload:fail_next=2,status=429") == {
        "upload": {"fail_next": 2, "status": 429}
    }
    assert parse_fault_option("read:tamper") == {"read": {"tamper": True}}
    combined = combine_faults('{"graphql": {"blackhole": true}}', ["upload:fail_rate=0.5"])
    assert combined == {"graphql": {"blackhole": True}, "upload": {"fail_rate": 0.5}}
    for bad in ("nofamily", "upload:nope=1", "moon:latency=1"):
        with pytest.raises(ValueError):  # noqa: PT011
            combine_faults(None, [bad])


# --- over HTTP ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429, 402])
def test_fail_next_with_each_status(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer, status: int
) -> None:
    gateway.set_faults(upload={"fail_next": 2, "status": status})
    item = make_item(signer)
    for _ in range(2):
        failed = upload(http, gateway.url, item)
        assert failed.status_code == status
        if status == 429:
            assert failed.headers["Retry-After"] == "1"
        if status == 402:
            assert failed.text == "Insufficient balance"
    # Failed uploads stored nothing; the third attempt goes through.
    assert http.get(f"{gateway.url}/raw/{item.id}", timeout=5).status_code == 404
    assert upload(http, gateway.url, item).status_code == 200


def test_retry_after_is_configurable(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    gateway.set_faults(upload=FaultSpec(fail_next=1, status=503, retry_after=7))
    response = upload(http, gateway.url, make_item(signer))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"


def test_fail_rate_is_a_fraction(
    data_dir: Path, http: requests.Session, signer: Ed25519Signer
) -> None:
    faults = {"upload": {"fail_rate": 0.5, "status": 503}}
    with LocalGateway(data_dir, key_bits=2048, faults=faults, fault_seed=7) as gateway:
        codes = [upload(http, gateway.url, make_item(signer)).status_code for _ in range(40)]
    assert set(codes) == {200, 503}
    assert 8 <= codes.count(503) <= 32


def test_faults_apply_per_family(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer)
    upload(http, gateway.url, item)
    gateway.set_faults(upload={"fail_rate": 1.0, "status": 500})
    assert upload(http, gateway.url, make_item(signer)).status_code == 500
    assert http.get(f"{gateway.url}/raw/{item.id}", timeout=5).status_code == 200
    assert http.get(f"{gateway.url}/v1/tx/{item.id}/status", timeout=5).status_code == 200
    gateway.set_faults(read={"fail_rate": 1.0, "status": 502}, graphql={"fail_rate": 1.0})
    assert http.get(f"{gateway.url}/raw/{item.id}", timeout=5).status_code == 502
    assert http.get(f"{gateway.url}/{item.id}", timeout=5).status_code == 502
    graphql = http.post(
        f"{gateway.url}/graphql", json={"query": "{ transactions { edges { cursor } } }"}, timeout=5
    )
    assert graphql.status_code == 503
    assert upload(http, gateway.url, make_item(signer)).status_code == 200  # replaced
    gateway.set_faults(verify={"fail_rate": 1.0, "status": 500})
    assert http.get(f"{gateway.url}/health", timeout=5).status_code == 500
    gateway.set_faults()
    assert gateway.faults == {}
    assert http.get(f"{gateway.url}/health", timeout=5).status_code == 200


def test_latency(gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer) -> None:
    item = make_item(signer)
    upload(http, gateway.url, item)
    gateway.set_faults(read={"latency": 0.3})
    started = time.monotonic()
    assert http.get(f"{gateway.url}/raw/{item.id}", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert upload(http, gateway.url, make_item(signer)).status_code == 200
    assert time.monotonic() - started < 0.3


def test_blackhole_is_bounded_by_the_client_timeout(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    gateway.set_faults(upload={"blackhole": True})
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        upload(http, gateway.url, make_item(signer), timeout=(2, 0.4))
    assert time.monotonic() - started < 2
    assert http.get(f"{gateway.url}/health", timeout=5).status_code == 200
    gateway.set_faults()
    assert upload(http, gateway.url, make_item(signer)).status_code == 200


def test_blackholed_request_is_released_by_stop(data_dir: Path, signer: Ed25519Signer) -> None:
    gateway = LocalGateway(data_dir, key_bits=2048, faults={"read": {"blackhole": True}}).start()
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(f"{gateway.url}/raw/{'A' * 43}", timeout=10)
        except requests.RequestException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    gateway.stop()
    thread.join(5)
    assert time.monotonic() - started < 3
    assert not thread.is_alive()
    assert outcome  # the connection closed without an answer


def test_tamper_flips_a_byte_but_keeps_headers(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    data = b'{"important": "record"}'
    item = make_item(signer, data)
    upload(http, gateway.url, item)
    gateway.set_faults(read={"tamper": True})
    for path in (f"/raw/{item.id}", f"/{item.id}"):
        response = http.get(gateway.url + path, timeout=5)
        assert response.status_code == 200
        assert len(response.content) == len(data)
        assert response.content != data
        assert sum(a != b for a, b in zip(response.content, data, strict=True)) == 1
        expected = b64url_encode(hashlib.sha256(data).digest())
        assert response.headers["X-AR-IO-Digest"] == expected
        got = b64url_encode(hashlib.sha256(response.content).digest())
        assert got != expected  # detectable by a client that checks
    gateway.set_faults()
    assert http.get(f"{gateway.url}/raw/{item.id}", timeout=5).content == data


def test_control_route(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    response = http.post(
        f"{gateway.url}/__faults", json={"upload": {"fail_next": 1, "status": 429}}, timeout=5
    )
    assert response.status_code == 200
    assert response.json()["faults"]["upload"]["fail_next"] == 1
    assert gateway.faults["upload"]["status"] == 429
    assert upload(http, gateway.url, make_item(signer)).status_code == 429
    assert upload(http, gateway.url, make_item(signer)).status_code == 200
    bad = http.post(f"{gateway.url}/__faults", json={"upload": {"fail_rate": 2}}, timeout=5)
    assert bad.status_code == 400
    assert http.post(f"{gateway.url}/__faults", data=b"{", timeout=5).status_code == 400
    http.post(f"{gateway.url}/__faults", json={"read": {"latency": 0.01}}, timeout=5)
    assert http.get(f"{gateway.url}/__faults", timeout=5).json() == {
        "faults": {"read": gateway.faults["read"]}
    }
    assert http.post(f"{gateway.url}/__faults", json={}, timeout=5).json() == {"faults": {}}


def test_faults_given_at_start(
    data_dir: Path, http: requests.Session, signer: Ed25519Signer
) -> None:
    faults = {"upload": FaultSpec(fail_next=1, status=502)}
    with LocalGateway(data_dir, key_bits=2048, faults=faults) as gateway:
        assert upload(http, gateway.url, make_item(signer)).status_code == 502
        assert upload(http, gateway.url, make_item(signer)).status_code == 200
