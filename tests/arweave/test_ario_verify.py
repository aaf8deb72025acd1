"""ArioVerifyClient against scripted ar.io Verify servers on 127.0.0.1, and through an
injected MockTransport (no socket) for deadlines, body caps and retries."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from ario_mlflow.arweave import http
from ario_mlflow.arweave.ario_verify import MAX_ANSWER_BYTES, ArioVerifyClient
from ario_mlflow.arweave.transport import HTTPTransport, MockTransport, Request, Response
from ario_mlflow.errors import DeadlineExceededError, TransportError
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.rsa_pss import derive_operator_address, public_jwk, sign_rsa_pss_sha256
from tests.support.loopback import Loopback, Reply

TX = "jwjbN4Td6nNdc-cGovoEGLiCQPThwhWt1TLIoM1JrqA"
OTHER_TX = "Q" * 43
ENVELOPE = b'{"event_type":"training_complete","spec_version":"ario.mlflow/v1"}'
ENVELOPE_HASH = sha256_hex(ENVELOPE)
OTHER_HASH = sha256_hex(b"some other bytes")
NETWORK = "submit_verification network/HTTP error: "
PARSE = "submit_verification response parse error: "


@pytest.fixture
def server() -> Iterator[Loopback]:
    srv = Loopback()
    srv.script("GET", "/health", Reply(200, {"status": "ok"}))
    yield srv
    srv.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose socket accepts connections (backlog) and never says anything."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield int(sock.getsockname()[1])
    sock.close()


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARIO_MLFLOW_ARIO_VERIFY_URL", raising=False)


def make_client(base: str, **kwargs: Any) -> ArioVerifyClient:
    options: dict[str, Any] = {
        "retry_backoff_factor": 0,
        "health_timeout": 1.0,
        "submit_timeout": 1.0,
    }
    options.update(kwargs)
    return ArioVerifyClient(base, **options)


# --- response builders ------------------------------------------------------------------


def result_body(
    *,
    level: Any = 2,
    status: Any = "confirmed",
    data_hash: Any = ENVELOPE_HASH,
    attestation: Any = None,
) -> dict[str, Any]:
    """A VerificationResult shaped like the ar.io Verify OpenAPI's."""
    return {
        "verificationId": "vrf_01",
        "timestamp": "2026-01-02T03:04:05Z",
        "txId": TX,
        "level": level,
        "existence": {
            "status": status,
            "blockHeight": 1_500_000,
            "blockTimestamp": 1,
            "blockId": "b",
        },
        "authenticity": {"status": "hash_verified", "dataHash": data_hash, "hashMatch": True},
        "owner": {"address": "owner-address", "publicKey": None, "addressVerified": True},
        "metadata": {"dataSize": len(ENVELOPE), "contentType": "application/json", "tags": []},
        "bundle": {"isBundled": True, "rootTransactionId": "root"},
        "gatewayAssessment": None,
        "attestation": attestation,
        "links": {
            "dashboard": "/verify/vrf_01",
            "pdf": "/api/v1/verify/vrf_01/pdf",
            "rawData": None,
        },
    }


def make_attestation(
    key: rsa.RSAPrivateKey, *, signer: rsa.RSAPrivateKey | None = None, **payload_fields: Any
) -> dict[str, Any]:
    """An attestation in the project's format, signed by ``signer`` (default ``key``)."""
    jwk = public_jwk(key.public_key())
    operator = derive_operator_address(jwk["n"])
    payload: dict[str, Any] = {
        "attested_at": "2026-01-02T03:04:05Z",
        "tx_id": TX,
        "data_hash": ENVELOPE_HASH,
        "data_size": len(ENVELOPE),
        "block_height": 1_500_000,
        "block_timestamp": 1_767_323_045,
        "operator": operator,
        "owner_address": "owner-address",
        "gateway": "127.0.0.1",
        "signature_verified": True,
        "level": 2,
        "attestation_version": 1,
    }
    payload.update(payload_fields)
    message = canonical_json(payload)
    return {
        "operator": operator,
        "gateway": "127.0.0.1",
        "attestedAt": payload["attested_at"],
        "payload": payload,
        "payloadHash": sha256_hex(message),
        "signature": sign_rsa_pss_sha256(message, signer or key),
        "operatorPublicKey": jwk,
    }


@pytest.fixture(scope="module")
def keys() -> dict[str, rsa.RSAPrivateKey]:
    return {
        "operator": rsa.generate_private_key(65537, 2048),
        "other": rsa.generate_private_key(65537, 2048),
        "e3": rsa.generate_private_key(3, 2048),
    }


def serve_result(server: Loopback, *bodies: Any) -> None:
    server.script(
        "POST", "/api/v1/verify", *(b if isinstance(b, Reply) else Reply(200, b) for b in bodies)
    )


# --- an injected transport (no socket) --------------------------------------------------

BASE = "http://verify.invalid"
VERIFY = "/api/v1/verify"


def answer(status: int = 200, body: Any = b"", headers: dict[str, str] | None = None) -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, headers or {}, data, "")


class Script:
    """A MockTransport handler: answers each (method, path) from a script, the last answer
    repeating (200 on /health unless scripted, else 404), and records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Response | Exception]] = {
            ("GET", "/health"): [answer(200, {"status": "ok"})]
        }
        self.sent: list[Request] = []

    def on(self, method: str, path: str, *answers: Response | Exception) -> None:
        self.routes[(method, path)] = list(answers)

    def to(self, method: str, path: str) -> list[Request]:
        return [r for r in self.sent if (r.method, urlsplit(r.url).path) == (method, path)]

    def __call__(self, request: Request) -> Response:
        self.sent.append(request)
        answers = self.routes.get((request.method, urlsplit(request.url).path)) or [answer(404)]
        reply = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every time.sleep, recorded instead of slept."""
    delays: list[float] = []
    monkeypatch.setattr(time, "sleep", delays.append)
    return delays


def refused() -> TransportError:
    """What HTTPTransport raises for a refused connection (the refusal as its context)."""
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError as exc:
        try:
            raise TransportError(f"{BASE}: cannot connect: {exc}") from None
        except TransportError as error:
            return error


# --- construction and health ------------------------------------------------------------


def test_health_200_enables(server: Loopback) -> None:
    client = make_client(server.url + "/")
    assert client.enabled is True
    assert client.base_url == server.url
    assert client.last_error is None
    assert [s.path for s in server.seen] == ["/health"]


def test_base_url_from_environment(server: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARIO_MLFLOW_ARIO_VERIFY_URL", server.url + "/")
    client = ArioVerifyClient(retry_backoff_factor=0, health_timeout=1.0)
    assert client.base_url == server.url
    assert client.enabled is True


def test_explicit_base_url_beats_environment(
    server: Loopback, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("ARIO_MLFLOW_ARIO_VERIFY_URL", f"http://127.0.0.1:{closed_port}")
    assert make_client(server.url).base_url == server.url


def test_disabled_without_url() -> None:
    client = ArioVerifyClient()
    assert client.enabled is False
    assert client.base_url == ""
    assert client.last_error is None
    assert client.submit_verification(TX) is None
    assert client.last_error == "ar.io Verify client not enabled"


def test_health_non_200_disables(server: Loopback) -> None:
    server.script("GET", "/health", Reply(404, "no"))
    client = make_client(server.url)
    assert client.enabled is False
    assert client.last_error == "health check failed: HTTP 404"


def test_health_connection_refused_disables(closed_port: int) -> None:
    client = make_client(f"http://127.0.0.1:{closed_port}", max_retries=0)
    assert client.enabled is False
    assert client.last_error is not None
    assert client.last_error.startswith("health check network error: ConnectionError")


def test_health_that_never_answers_is_bounded(silent_port: int) -> None:
    started = time.monotonic()
    client = make_client(f"http://127.0.0.1:{silent_port}", health_timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert client.enabled is False
    assert client.last_error is not None
    assert client.last_error.startswith("health check network error: ")


def test_retry_adapter_matches_reference(slept: list[float]) -> None:
    # 0.3.0's urllib3 Retry(total=2, backoff_factor=0.5, status_forcelist=429/5xx,
    # allowed_methods GET and POST, respect_retry_after_header=True), checked by behaviour.
    assert {429, 500, 502, 503, 504} == http.RETRY_STATUSES
    for status in sorted(http.RETRY_STATUSES):
        script = Script()
        script.on("GET", "/health", answer(status), answer(status), answer(200))
        script.on("POST", VERIFY, answer(status))
        slept.clear()
        client = ArioVerifyClient(
            BASE, max_retries=2, retry_backoff_factor=0.5, transport=MockTransport(script)
        )
        assert client.enabled  # GET: two retries, the third answer is the 200
        assert client.submit_verification(TX) is None  # POST: three answers, then given up
        assert len(script.to("GET", "/health")) == 3
        assert len(script.to("POST", VERIFY)) == 3
        assert slept == [1.0, 1.0]  # backoff 0, then 0.5 * 2 (per call)
    script = Script()
    script.on("POST", VERIFY, answer(503, headers={"Retry-After": "2"}), answer(200, result_body()))
    slept.clear()
    client = ArioVerifyClient(BASE, retry_backoff_factor=0.5, transport=MockTransport(script))
    assert client.submit_verification(TX) is not None
    assert slept == [2.0]


def test_injected_session_is_used_as_is(server: Loopback) -> None:
    calls: list[str] = []

    class Recording(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
            calls.append(f"{method!s} {url!s}")
            return super().request(method, url, *a, **kw)

    session = Recording()
    serve_result(server, result_body())
    client = ArioVerifyClient(server.url, session=session)
    assert client._session is session
    assert client.submit_verification(TX) is not None
    assert calls == [f"GET {server.url}/health", f"POST {server.url}/api/v1/verify"]


def test_userinfo_in_base_url_is_never_logged(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ario_mlflow")
    client = make_client(f"http://alice:hunter2@127.0.0.1:{closed_port}", max_retries=0)
    assert client.enabled is False
    assert "hunter2" not in caplog.text
    assert "hunter2" not in (client.last_error or "")
    assert "***@127.0.0.1" in caplog.text


# --- submit_verification: request and normalization --------------------------------------


def test_submit_posts_tx_id_and_normalizes(server: Loopback) -> None:
    serve_result(server, result_body())
    client = make_client(server.url)
    result = client.submit_verification(TX)
    (post,) = server.requests_to("POST", "/api/v1/verify")
    assert json.loads(post.body) == {"txId": TX}
    assert post.headers["Content-Type"] == "application/json"
    assert result == {
        "verification_id": "vrf_01",
        "status": "confirmed",
        "attestation_level": 2,
        "report_url": f"{server.url}/verify/vrf_01",
        "pdf_url": f"{server.url}/api/v1/verify/vrf_01/pdf",
        "attested_by": None,
        "attested_at": None,
        "data_hash": ENVELOPE_HASH,
        "attestation": None,
        "attestation_signature_valid": None,
        "data_hash_matches": None,
    }
    assert client.last_error is None


def test_null_sub_objects_are_empty(server: Loopback) -> None:
    body = result_body(level=None)
    for key in ("existence", "authenticity", "links", "attestation", "owner"):
        body[key] = None
    serve_result(server, body)
    result = make_client(server.url).submit_verification(TX, expected_data_hash=ENVELOPE_HASH)
    assert result is not None
    assert result["status"] == "unknown"
    assert result["attestation_level"] is None
    assert result["report_url"] is None
    assert result["pdf_url"] is None
    assert result["attested_by"] is None
    assert result["data_hash"] is None
    assert result["attestation_signature_valid"] is None
    assert result["data_hash_matches"] is None


def test_missing_sub_objects_are_empty(server: Loopback) -> None:
    serve_result(server, {"verificationId": "v", "level": 1})
    result = make_client(server.url).submit_verification(TX)
    assert result is not None
    assert (result["status"], result["attestation_level"], result["report_url"]) == (
        "unknown",
        1,
        None,
    )


def test_absolute_links_are_kept(server: Loopback) -> None:
    body = result_body()
    body["links"] = {"dashboard": "https://verify.example/r/1", "pdf": "http://pdf.example/1.pdf"}
    serve_result(server, body)
    result = make_client(server.url).submit_verification(TX)
    assert result is not None
    assert result["report_url"] == "https://verify.example/r/1"
    assert result["pdf_url"] == "http://pdf.example/1.pdf"


def test_attestation_gateway_and_time_are_reported(
    server: Loopback, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    serve_result(server, result_body(attestation=make_attestation(keys["operator"])))
    result = make_client(server.url).submit_verification(TX)
    assert result is not None
    assert result["attested_by"] == "127.0.0.1"
    assert result["attested_at"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("level", ["2", 2.0, True, [2]])
def test_non_integer_level_is_none(server: Loopback, level: Any) -> None:
    serve_result(server, result_body(level=level))
    result = make_client(server.url).submit_verification(TX)
    assert result is not None
    assert result["attestation_level"] is None


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b"", b"[1, 2]", b'"text"', json.dumps({"existence": "confirmed"})],
    ids=["html", "empty", "array", "string", "sub-object-not-object"],
)
def test_bad_bodies_are_parse_errors(server: Loopback, body: Any) -> None:
    serve_result(server, Reply(200, body))
    client = make_client(server.url)
    assert client.submit_verification(TX) is None
    assert client.last_error is not None
    assert client.last_error.startswith(PARSE)


def test_bad_arguments_raise(server: Loopback) -> None:
    client = make_client(server.url)
    with pytest.raises(ValueError, match="tx_id"):
        client.submit_verification("")
    with pytest.raises(ValueError, match="expected_data_hash"):
        client.submit_verification(TX, expected_data_hash="abc")
    assert server.requests_to("POST", "/api/v1/verify") == []


# --- submit_verification: server errors ---------------------------------------------------


def test_500_then_200_is_retried(server: Loopback) -> None:
    serve_result(server, Reply(500, "boom"), result_body())
    client = make_client(server.url, max_retries=2)
    result = client.submit_verification(TX)
    assert result is not None
    assert result["attestation_level"] == 2
    assert len(server.requests_to("POST", "/api/v1/verify")) == 2


def test_persistent_503_gives_up(server: Loopback) -> None:
    serve_result(server, Reply(503, "down"))
    client = make_client(server.url, max_retries=2)
    assert client.submit_verification(TX) is None
    assert client.last_error == NETWORK + "HTTP 503 Service Unavailable"
    assert len(server.requests_to("POST", "/api/v1/verify")) == 3


def test_retry_after_is_honoured(server: Loopback) -> None:
    serve_result(server, Reply(429, "slow down", {"Retry-After": "1"}), result_body())
    client = make_client(server.url)
    started = time.monotonic()
    assert client.submit_verification(TX) is not None
    assert 0.9 <= time.monotonic() - started < 5


def test_retry_after_is_capped(server: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_RETRY_AFTER", 0.3)
    serve_result(server, Reply(503, "later", {"Retry-After": "3600"}), result_body())
    client = make_client(server.url)
    started = time.monotonic()
    assert client.submit_verification(TX) is not None
    assert 0.25 <= time.monotonic() - started < 3


def test_malformed_retry_after_falls_back_to_backoff(server: Loopback) -> None:
    serve_result(server, Reply(429, "x", {"Retry-After": "soon-ish"}), result_body())
    client = make_client(server.url)
    assert client.submit_verification(TX) is not None
    assert client.last_error is None


def test_404_is_not_retried(server: Loopback) -> None:
    serve_result(server, Reply(404, "unknown tx"))
    client = make_client(server.url)
    assert client.submit_verification(TX) is None
    assert client.last_error == NETWORK + "HTTP 404 Not Found"
    assert len(server.requests_to("POST", "/api/v1/verify")) == 1


def test_connection_refused(server: Loopback) -> None:
    client = make_client(server.url, max_retries=1)
    assert client.enabled
    server.close()
    assert client.submit_verification(TX) is None
    assert client.last_error is not None
    assert client.last_error.startswith(NETWORK + "ConnectionError: ")


def test_server_that_never_answers_is_bounded_by_timeout(server: Loopback) -> None:
    serve_result(server, Reply(hang=True))
    client = make_client(server.url, submit_timeout=0.3)
    started = time.monotonic()
    assert client.submit_verification(TX) is None
    assert time.monotonic() - started < 1.5
    assert client.last_error is not None
    assert client.last_error.startswith(NETWORK + "ConnectionError: ")
    assert "timed out" in client.last_error
    assert len(server.requests_to("POST", "/api/v1/verify")) == 1  # a timeout is not retried


def test_failures_log_without_traceback(server: Loopback, caplog: pytest.LogCaptureFixture) -> None:
    serve_result(server, Reply(500, "boom"))
    client = make_client(server.url, max_retries=0)
    with caplog.at_level(logging.WARNING, logger="ario_mlflow"):
        assert client.submit_verification(TX) is None
    records = [r for r in caplog.records if r.name.startswith("ario_mlflow")]
    assert records
    assert all(r.exc_info is None for r in records)


def test_last_error_resets_on_success(server: Loopback) -> None:
    serve_result(server, Reply(404, "no"), result_body())
    client = make_client(server.url)
    assert client.submit_verification(TX) is None
    assert client.last_error is not None
    assert client.submit_verification(TX) is not None
    assert client.last_error is None


# --- operator attestation -----------------------------------------------------------------


def test_valid_attestation(server: Loopback, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    attestation = make_attestation(keys["operator"])
    serve_result(server, result_body(attestation=attestation))
    result = make_client(server.url).submit_verification(TX, expected_data_hash=ENVELOPE_HASH)
    assert result is not None
    assert result["attestation"] == attestation
    assert result["attestation_signature_valid"] is True
    assert result["data_hash_matches"] is True


def test_valid_attestation_without_payload_hash(
    server: Loopback, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    attestation = make_attestation(keys["operator"])
    del attestation["payloadHash"]
    serve_result(server, result_body(attestation=attestation))
    result = make_client(server.url).submit_verification(TX)
    assert result is not None
    assert result["attestation_signature_valid"] is True


def _other_address(keys: dict[str, rsa.RSAPrivateKey]) -> str:
    return derive_operator_address(public_jwk(keys["other"].public_key())["n"])


def _changed_payload(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    attestation = make_attestation(keys["operator"])
    attestation["payload"]["data_size"] += 1
    return attestation


def _wrong_outer_operator(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    attestation = make_attestation(keys["operator"])
    attestation["operator"] = _other_address(keys)
    return attestation


def _wrong_payload_operator(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    return make_attestation(keys["operator"], operator=_other_address(keys))


def _key_swapped(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    # Consistent claims for the other key, but signed by the operator's key.
    return make_attestation(keys["other"], signer=keys["operator"])


def _bad_hex(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    attestation = make_attestation(keys["operator"])
    attestation["signature"] = "zz" + attestation["signature"][2:]
    return attestation


def _truncated_signature(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    attestation = make_attestation(keys["operator"])
    attestation["signature"] = attestation["signature"][:-2]
    return attestation


def _base64_signature(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    attestation = make_attestation(keys["operator"])
    raw = bytes.fromhex(attestation["signature"])
    attestation["signature"] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return attestation


def _payload_hash_wrong(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    attestation = make_attestation(keys["operator"])
    attestation["payloadHash"] = OTHER_HASH
    return attestation


def _no_public_key(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    attestation = make_attestation(keys["operator"])
    del attestation["operatorPublicKey"]
    return attestation


def _payload_not_object(keys: dict[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    attestation = make_attestation(keys["operator"])
    attestation["payload"] = json.dumps(attestation["payload"])
    return attestation


TAMPERS: dict[str, Callable[[dict[str, rsa.RSAPrivateKey]], dict[str, Any]]] = {
    "payload-changed-after-signing": _changed_payload,
    "wrong-operator": _wrong_outer_operator,
    "wrong-operator-in-payload": _wrong_payload_operator,
    "different-tx-id": lambda keys: make_attestation(keys["operator"], tx_id=OTHER_TX),
    "level-mismatch": lambda keys: make_attestation(keys["operator"], level=3),
    "level-not-integer": lambda keys: make_attestation(keys["operator"], level="2"),
    "key-swapped": _key_swapped,
    "bad-hex": _bad_hex,
    "truncated-signature": _truncated_signature,
    "base64-signature": _base64_signature,
    "exponent-3": lambda keys: make_attestation(keys["e3"]),
    "payload-hash-wrong": _payload_hash_wrong,
    "no-public-key": _no_public_key,
    "payload-not-object": _payload_not_object,
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_tampered_attestation_is_invalid(
    server: Loopback, keys: dict[str, rsa.RSAPrivateKey], tamper: str
) -> None:
    serve_result(server, result_body(attestation=TAMPERS[tamper](keys)))
    result = make_client(server.url).submit_verification(TX)
    assert result is not None
    assert result["attestation_signature_valid"] is False


def test_attestation_without_reported_level_is_invalid(
    server: Loopback, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    serve_result(server, result_body(level=None, attestation=make_attestation(keys["operator"])))
    result = make_client(server.url).submit_verification(TX)
    assert result is not None
    assert result["attestation_signature_valid"] is False


def test_unsigned_attestation_is_none(server: Loopback) -> None:
    attestation = {"operator": "op", "gateway": "gw", "attestedAt": "2026-01-01T00:00:00Z"}
    serve_result(server, result_body(attestation=attestation))
    result = make_client(server.url).submit_verification(TX)
    assert result is not None
    assert result["attestation"] == attestation
    assert result["attested_by"] == "gw"
    assert result["attestation_signature_valid"] is None


# --- data hash binding --------------------------------------------------------------------


def test_attested_hash_differs_from_expected(
    server: Loopback, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    # The server's unsigned dataHash agrees, but the signed payload attests other bytes.
    attestation = make_attestation(keys["operator"], data_hash=OTHER_HASH)
    serve_result(server, result_body(attestation=attestation, data_hash=ENVELOPE_HASH))
    result = make_client(server.url).submit_verification(TX, expected_data_hash=ENVELOPE_HASH)
    assert result is not None
    assert result["attestation_signature_valid"] is True
    assert result["data_hash_matches"] is False


def test_invalid_attestation_falls_back_to_authenticity_hash(
    server: Loopback, keys: dict[str, rsa.RSAPrivateKey]
) -> None:
    attestation = make_attestation(keys["operator"], data_hash=OTHER_HASH)
    attestation["payload"]["data_size"] += 1
    serve_result(server, result_body(attestation=attestation, data_hash=ENVELOPE_HASH))
    result = make_client(server.url).submit_verification(TX, expected_data_hash=ENVELOPE_HASH)
    assert result is not None
    assert result["attestation_signature_valid"] is False
    assert result["data_hash_matches"] is True


@pytest.mark.parametrize(
    ("served", "expected", "matches"),
    [
        (ENVELOPE_HASH, ENVELOPE_HASH, True),
        (ENVELOPE_HASH.upper(), ENVELOPE_HASH, True),
        (ENVELOPE_HASH, ENVELOPE_HASH.upper(), True),
        (
            base64.urlsafe_b64encode(bytes.fromhex(ENVELOPE_HASH)).rstrip(b"=").decode(),
            ENVELOPE_HASH,
            True,
        ),
        (OTHER_HASH, ENVELOPE_HASH, False),
        ("not-a-hash", ENVELOPE_HASH, False),
        (12345, ENVELOPE_HASH, False),
        (None, ENVELOPE_HASH, None),
        (ENVELOPE_HASH, None, None),
    ],
    ids=[
        "hex",
        "upper-served",
        "upper-expected",
        "base64url",
        "other",
        "garbage",
        "number",
        "none-attested",
        "none-expected",
    ],
)
def test_authenticity_hash_comparison(
    server: Loopback, served: Any, expected: str | None, matches: bool | None
) -> None:
    serve_result(server, result_body(data_hash=served))
    result = make_client(server.url).submit_verification(TX, expected_data_hash=expected)
    assert result is not None
    assert result["data_hash_matches"] is matches


# --- poll_attestation ---------------------------------------------------------------------


def test_poll_returns_immediately_at_target(server: Loopback) -> None:
    serve_result(server, result_body(level=2))
    result = make_client(server.url).poll_attestation(TX, timeout=5, interval=0.01)
    assert result is not None
    assert result["attestation_level"] == 2
    assert len(server.requests_to("POST", "/api/v1/verify")) == 1


def test_poll_progresses_to_target(server: Loopback) -> None:
    serve_result(server, result_body(level=1), result_body(level=1), result_body(level=3))
    result = make_client(server.url).poll_attestation(TX, timeout=5, interval=0.01)
    assert result is not None
    assert result["attestation_level"] == 3
    assert len(server.requests_to("POST", "/api/v1/verify")) == 3


def test_poll_timeout_returns_last_result(server: Loopback) -> None:
    serve_result(server, Reply(404, "not yet"), result_body(level=1), Reply(404, "flaky"))
    started = time.monotonic()
    result = make_client(server.url).poll_attestation(TX, timeout=0.3, interval=0.05)
    assert time.monotonic() - started < 2
    assert result is not None
    assert result["attestation_level"] == 1
    assert len(server.requests_to("POST", "/api/v1/verify")) >= 3


def test_poll_zero_timeout_submits_once(server: Loopback) -> None:
    serve_result(server, result_body(level=1))
    result = make_client(server.url).poll_attestation(TX, timeout=0, interval=10)
    assert result is not None
    assert len(server.requests_to("POST", "/api/v1/verify")) == 1


def test_poll_disabled() -> None:
    client = ArioVerifyClient()
    assert client.poll_attestation(TX, timeout=0) is None
    assert client.last_error is not None
    assert "not enabled" in client.last_error


def test_poll_all_failures(server: Loopback) -> None:
    serve_result(server, Reply(404, "never"))
    client = make_client(server.url)
    assert client.poll_attestation(TX, timeout=0.1, interval=0.02) is None
    assert client.last_error == NETWORK + "HTTP 404 Not Found"


def test_poll_passes_expected_hash(server: Loopback, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    serve_result(server, result_body(attestation=make_attestation(keys["operator"])))
    result = make_client(server.url).poll_attestation(
        TX, timeout=1, interval=0.01, expected_data_hash=OTHER_HASH
    )
    assert result is not None
    assert result["attestation_signature_valid"] is True
    assert result["data_hash_matches"] is False


# --- through an injected transport: deadlines, caps, retries ------------------------------


def test_requests_have_a_deadline_and_a_body_cap() -> None:
    script = Script()
    script.on("POST", VERIFY, answer(200, result_body()))
    client = ArioVerifyClient(
        BASE, health_timeout=3.0, submit_timeout=7.0, transport=MockTransport(script)
    )
    assert client.submit_verification(TX) is not None
    health, post = script.sent
    assert (health.method, health.url, health.timeout) == ("GET", f"{BASE}/health", 3.0)
    assert (post.method, post.url, post.timeout) == ("POST", f"{BASE}{VERIFY}", 7.0)
    assert json.loads(post.body) == {"txId": TX}
    assert post.headers["Content-Type"] == "application/json"
    assert 0 < MAX_ANSWER_BYTES <= 512 * 1024
    assert health.max_body == post.max_body == MAX_ANSWER_BYTES


def test_huge_answer_is_refused() -> None:
    script = Script()
    # A valid result (unknown fields are ignored) that is one byte too long.
    body = result_body()
    body["padding"] = ""
    body["padding"] = "x" * (MAX_ANSWER_BYTES + 1 - len(json.dumps(body).encode()))
    script.on("POST", VERIFY, answer(200, body))
    client = ArioVerifyClient(BASE, transport=MockTransport(script))
    assert client.submit_verification(TX) is None
    assert client.last_error is not None
    assert client.last_error.startswith(NETWORK + "ResponseTooLargeError: ")
    assert len(script.to("POST", VERIFY)) == 1  # not retried


def test_huge_answer_is_refused_over_http(server: Loopback) -> None:
    serve_result(server, Reply(200, b"[" + b"0," * MAX_ANSWER_BYTES + b"0]"))
    client = make_client(server.url)
    assert client.submit_verification(TX) is None
    assert client.last_error is not None
    assert client.last_error.startswith(NETWORK + "ResponseTooLargeError: ")


def test_503_then_success_is_retried(slept: list[float]) -> None:
    script = Script()
    script.on("POST", VERIFY, answer(503), answer(503), answer(200, result_body()))
    client = ArioVerifyClient(
        BASE, max_retries=2, retry_backoff_factor=0.5, transport=MockTransport(script)
    )
    result = client.submit_verification(TX)
    assert result is not None
    assert result["attestation_level"] == 2
    assert client.last_error is None
    assert len(script.to("POST", VERIFY)) == 3
    assert slept == [1.0]


def test_no_retry_without_retries(slept: list[float]) -> None:
    script = Script()
    script.on("POST", VERIFY, answer(503), answer(200, result_body()))
    client = ArioVerifyClient(BASE, max_retries=0, transport=MockTransport(script))
    assert client.submit_verification(TX) is None
    assert client.last_error == NETWORK + "HTTP 503 Service Unavailable"
    assert len(script.to("POST", VERIFY)) == 1


@pytest.mark.parametrize(
    "retry_after",
    ["3600", formatdate(time.time() + 3600, usegmt=True)],
    ids=["seconds", "http-date"],
)
def test_retry_after_is_capped_at_ten_seconds(slept: list[float], retry_after: str) -> None:
    assert http.MAX_RETRY_AFTER == 10.0
    script = Script()
    script.on(
        "POST",
        VERIFY,
        answer(429, headers={"Retry-After": retry_after}),
        answer(200, result_body()),
    )
    client = ArioVerifyClient(BASE, transport=MockTransport(script))
    assert client.submit_verification(TX) is not None
    assert slept == [10.0]


@pytest.mark.parametrize("retry_after", ["soon-ish", "0", "-5"])
def test_unusable_retry_after_falls_back_to_backoff(slept: list[float], retry_after: str) -> None:
    script = Script()
    script.on(
        "POST",
        VERIFY,
        answer(503, headers={"Retry-After": retry_after}),
        answer(503, headers={"Retry-After": retry_after}),
        answer(200, result_body()),
    )
    client = ArioVerifyClient(BASE, retry_backoff_factor=0.25, transport=MockTransport(script))
    assert client.submit_verification(TX) is not None
    assert slept == [0.5]


def test_timeout_is_not_retried(slept: list[float]) -> None:
    script = Script()
    script.on("POST", VERIFY, DeadlineExceededError(f"{BASE}: no complete answer within 1s"))
    client = ArioVerifyClient(BASE, max_retries=2, transport=MockTransport(script))
    assert client.submit_verification(TX) is None
    assert client.last_error == (
        NETWORK + f"ConnectionError: timed out: {BASE}: no complete answer within 1s"
    )
    assert len(script.to("POST", VERIFY)) == 1
    assert slept == []


def test_failure_after_sending_is_not_retried() -> None:
    script = Script()
    script.on("POST", VERIFY, TransportError(f"{BASE}: ConnectionResetError: reset by peer"))
    client = ArioVerifyClient(BASE, max_retries=2, transport=MockTransport(script))
    assert client.submit_verification(TX) is None
    assert (
        client.last_error
        == NETWORK + f"ConnectionError: {BASE}: ConnectionResetError: reset by peer"
    )
    assert len(script.to("POST", VERIFY)) == 1


def test_refused_connection_is_retried(slept: list[float]) -> None:
    script = Script()
    script.on("POST", VERIFY, refused(), answer(200, result_body()))
    client = ArioVerifyClient(BASE, max_retries=2, transport=MockTransport(script))
    assert client.submit_verification(TX) is not None
    assert len(script.to("POST", VERIFY)) == 2


def test_refused_connection_over_http_is_retried(closed_port: int) -> None:
    real = HTTPTransport()
    sent: list[Request] = []

    def counting(request: Request) -> Response:
        sent.append(request)
        return real.send(request)

    client = make_client(
        f"http://127.0.0.1:{closed_port}", max_retries=2, transport=MockTransport(counting)
    )
    assert client.enabled is False
    assert client.last_error is not None
    assert client.last_error.startswith("health check network error: ConnectionError: ")
    assert len(sent) == 3


def test_userinfo_becomes_basic_auth_and_leaves_the_url() -> None:
    script = Script()
    client = ArioVerifyClient(
        "http://alice:hunter%212@verify.invalid", transport=MockTransport(script)
    )
    assert client.enabled
    (health,) = script.sent
    assert health.url == f"{BASE}/health"
    expected = base64.b64encode(b"alice:hunter!2").decode()
    assert health.headers["Authorization"] == f"Basic {expected}"


def test_same_origin_redirect_is_followed(server: Loopback) -> None:
    server.script("GET", "/health", Reply(307, b"", {"Location": "/healthz"}))
    server.script("GET", "/healthz", Reply(200, {"status": "ok"}))
    client = make_client(server.url)
    assert client.enabled is True
    assert [s.path for s in server.seen] == ["/health", "/healthz"]


def test_session_and_transport_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        ArioVerifyClient(BASE, session=requests.Session(), transport=MockTransport(Script()))


def test_injected_session_has_the_body_cap(server: Loopback) -> None:
    serve_result(server, Reply(200, b"[" + b"0," * MAX_ANSWER_BYTES + b"0]"))
    with requests.Session() as session:
        client = ArioVerifyClient(server.url, session=session, submit_timeout=1.0)
        assert client.submit_verification(TX) is None
    assert client.last_error is not None
    assert client.last_error.startswith(NETWORK + "ResponseTooLargeError: ")
