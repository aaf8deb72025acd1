"""VerifyStatusClient against scripted ar-io-agent servers on 127.0.0.1, and through an
injected MockTransport (no socket) for the deadline, the body cap and redirects."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ario_mlflow.arweave.agent_status import (
    MAX_ANSWER_BYTES,
    OUTCOMES,
    VerifyStatus,
    VerifyStatusClient,
)
from ario_mlflow.arweave.transport import HTTPTransport, MockTransport, Request, Response
from ario_mlflow.errors import (
    AssetVerificationError,
    DeadlineExceededError,
    TransportError,
    VerifyStatusAuthError,
    VerifyStatusError,
    VerifyStatusLicenseError,
    VerifyStatusTransportError,
    VerifyStatusUnknownAssetError,
    exception_for_status,
)
from tests.support.loopback import Loopback, Reply

SECRET = "s3cret-management-token-7f1c"
API_KEY = "ak_live_0123456789"
ASSET = "models/fraud v2"
ASSET_PATH = "/v1/verify-status/models%2Ffraud%20v2"
TX = "jwjbN4Td6nNdc-cGovoEGLiCQPThwhWt1TLIoM1JrqA"


@pytest.fixture
def agent() -> Iterator[Loopback]:
    srv = Loopback()
    yield srv
    srv.close()


@pytest.fixture
def elsewhere() -> Iterator[Loopback]:
    """A second server: a redirect target or a proxy that must never be contacted."""
    srv = Loopback()
    yield srv
    srv.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_body(asset_id: str = ASSET, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "asset_id": asset_id,
        "tenant_id": "tenant-1",
        "agent_id": "agent-7",
        "outcome": "verified",
        "last_verified_at": "2026-01-02T03:04:05Z",
        "max_age": 300,
        "stale": False,
        "policy_hash": "ab" * 32,
        "current_tx_id": TX,
    }
    body.update(changes)
    return body


def client_for(server: Loopback, **kwargs: Any) -> VerifyStatusClient:
    options: dict[str, Any] = {"secret": SECRET, "timeout": 1.0}
    options.update(kwargs)
    return VerifyStatusClient(server.url, **options)


def serve(server: Loopback, *replies: Reply, path: str = ASSET_PATH) -> None:
    server.script("GET", path, *replies)


# --- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [{}, {"secret": SECRET, "api_key": API_KEY}, {"secret": ""}, {"api_key": ""}],
    ids=["none", "both", "empty-secret", "empty-api-key"],
)
def test_exactly_one_credential(credentials: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="exactly one") as info:
        VerifyStatusClient("http://127.0.0.1:9847", **credentials)
    assert SECRET not in str(info.value)
    assert API_KEY not in str(info.value)


@pytest.mark.parametrize("secret", ["bad\r\nX-Injected: 1", "tab\there", "clé-secrète"])
def test_credential_must_be_printable_ascii(secret: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII") as info:
        VerifyStatusClient("http://127.0.0.1:9847", secret)
    assert secret not in str(info.value)


def test_base_url_needs_a_scheme() -> None:
    with pytest.raises(ValueError, match="base_url"):
        VerifyStatusClient("127.0.0.1:9847", SECRET)


def test_repr_hides_the_secret(agent: Loopback) -> None:
    client = VerifyStatusClient(agent.url + "/", SECRET)
    assert client.base_url == agent.url
    assert SECRET not in repr(client)


def test_public_names() -> None:
    assert frozenset({"verified", "tampered", "missing", "unavailable", "unknown"}) == OUTCOMES
    assert [f.name for f in dataclasses.fields(VerifyStatus)] == [
        "asset_id",
        "tenant_id",
        "agent_id",
        "outcome",
        "last_verified_at",
        "max_age",
        "stale",
        "policy_hash",
        "current_tx_id",
    ]


# --- request ------------------------------------------------------------------------------


def test_parses_fields(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body()))
    status = client_for(agent).get(ASSET)
    assert status == VerifyStatus(
        asset_id=ASSET,
        tenant_id="tenant-1",
        agent_id="agent-7",
        outcome="verified",
        last_verified_at="2026-01-02T03:04:05Z",
        max_age=300,
        stale=False,
        policy_hash="ab" * 32,
        current_tx_id=TX,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.outcome = "tampered"  # type: ignore[misc]
    assert exception_for_status(status) is None


def test_secret_header(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body()))
    client_for(agent).get(ASSET)
    (seen,) = agent.seen
    assert seen.method == "GET"
    assert seen.headers["X-Ario-Management-Secret"] == SECRET
    assert "Authorization" not in seen.headers


def test_bearer_header(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body()))
    client_for(agent, secret=None, api_key=API_KEY).get(ASSET)
    (seen,) = agent.seen
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "X-Ario-Management-Secret" not in seen.headers


@pytest.mark.parametrize(
    ("asset_id", "encoded"),
    [
        ("models/fraud v2", "models%2Ffraud%20v2"),
        ("a~b-c_d.e9", "a~b-c_d.e9"),
        ("modèle", "mod%C3%A8le"),
        ("a?b#c&d=e+f", "a%3Fb%23c%26d%3De%2Bf"),
        ("100%", "100%25"),
    ],
)
def test_asset_id_is_percent_encoded(agent: Loopback, asset_id: str, encoded: str) -> None:
    path = f"/v1/verify-status/{encoded}"
    serve(agent, Reply(200, status_body(asset_id)), path=path)
    assert client_for(agent).get(asset_id).asset_id == asset_id
    assert [s.path for s in agent.seen] == [path]


@pytest.mark.parametrize("asset_id", ["", ".", ".."])
def test_unaddressable_asset_id_is_refused(agent: Loopback, asset_id: str) -> None:
    with pytest.raises(ValueError, match="asset_id"):
        client_for(agent).get(asset_id)
    assert agent.seen == []


# --- body ---------------------------------------------------------------------------------


def test_unknown_fields_are_ignored(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body(extra="x", nested={"a": 1})))
    assert client_for(agent).get(ASSET).outcome == "verified"


def test_unknown_outcome_becomes_unknown(agent: Loopback, caplog: pytest.LogCaptureFixture) -> None:
    serve(agent, Reply(200, status_body(outcome="quarantined")))
    with caplog.at_level(logging.WARNING, logger="ario_mlflow"):
        status = client_for(agent).get(ASSET)
    assert status.outcome == "unknown"
    assert "quarantined" in caplog.text


@pytest.mark.parametrize("outcome", sorted(OUTCOMES))
def test_known_outcomes_are_kept(agent: Loopback, outcome: str) -> None:
    serve(agent, Reply(200, status_body(outcome=outcome)))
    assert client_for(agent).get(ASSET).outcome == outcome


def test_null_fields(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body(last_verified_at=None, current_tx_id=None)))
    status = client_for(agent).get(ASSET)
    assert status.last_verified_at is None
    assert status.current_tx_id is None


@pytest.mark.parametrize(
    ("changes", "max_age", "stale"),
    [
        ({"max_age": "300"}, 300, False),
        ({"max_age": 300.0}, 300, False),
        ({"stale": True}, 300, True),
        ({"stale": "true"}, 300, True),
        ({"stale": "False"}, 300, False),
        ({"stale": 0}, 300, False),
        ({"stale": 1}, 300, True),
    ],
)
def test_type_coercion(agent: Loopback, changes: dict[str, Any], max_age: int, stale: bool) -> None:
    serve(agent, Reply(200, status_body(**changes)))
    status = client_for(agent).get(ASSET)
    assert (status.max_age, status.stale) == (max_age, stale)
    assert type(status.max_age) is int
    assert type(status.stale) is bool


@pytest.mark.parametrize(
    "changes",
    [
        {"max_age": "soon"},
        {"max_age": True},
        {"max_age": None},
        {"stale": "maybe"},
        {"stale": None},
        {"stale": 2},
        {"tenant_id": None},
        {"outcome": 5},
        {"policy_hash": ["ab"]},
        {"current_tx_id": 7},
    ],
)
def test_bad_types_are_transport_errors(agent: Loopback, changes: dict[str, Any]) -> None:
    serve(agent, Reply(200, status_body(**changes)))
    with pytest.raises(VerifyStatusTransportError, match="malformed") as info:
        client_for(agent).get(ASSET)
    assert info.value.asset_id == ASSET


@pytest.mark.parametrize("missing", list(status_body()))
def test_missing_field_is_a_transport_error(agent: Loopback, missing: str) -> None:
    body = status_body()
    del body[missing]
    serve(agent, Reply(200, body))
    with pytest.raises(VerifyStatusTransportError, match=missing):
        client_for(agent).get(ASSET)


@pytest.mark.parametrize("body", [b"<html>", b"", b"[]", b"null", b'"verified"'])
def test_malformed_body_is_a_transport_error(agent: Loopback, body: bytes) -> None:
    serve(agent, Reply(200, body))
    with pytest.raises(VerifyStatusTransportError) as info:
        client_for(agent).get(ASSET)
    assert info.value.asset_id == ASSET


def test_answer_for_another_asset_is_refused(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body(asset_id="models/other")))
    with pytest.raises(VerifyStatusTransportError, match="models/other"):
        client_for(agent).get(ASSET)


# --- status codes -------------------------------------------------------------------------


def test_401_is_an_auth_error(agent: Loopback) -> None:
    serve(agent, Reply(401, {"error": "bad secret"}))
    with pytest.raises(VerifyStatusAuthError) as info:
        client_for(agent).get(ASSET)
    assert info.value.asset_id == ASSET


def test_404_is_an_unknown_asset(agent: Loopback) -> None:
    serve(agent, Reply(404, {"error": "asset not in policy"}))
    with pytest.raises(VerifyStatusUnknownAssetError) as info:
        client_for(agent).get(ASSET)
    assert info.value.asset_id == ASSET


def test_503_license_gate_with_upgrade_url(agent: Loopback) -> None:
    url = "https://ar.io/upgrade?plan=pro"
    serve(agent, Reply(503, {"error": "license", "upgrade_url": url}))
    with pytest.raises(VerifyStatusLicenseError) as info:
        client_for(agent).get(ASSET)
    assert info.value.upgrade_url == url
    assert url in str(info.value)
    assert info.value.asset_id == ASSET
    assert isinstance(info.value, VerifyStatusTransportError)


@pytest.mark.parametrize(
    "body", [b"", b"Service Unavailable", {"error": "license"}, {"upgrade_url": "javascript:x"}]
)
def test_503_without_upgrade_url(agent: Loopback, body: Any) -> None:
    serve(agent, Reply(503, body))
    with pytest.raises(VerifyStatusLicenseError) as info:
        client_for(agent).get(ASSET)
    assert info.value.upgrade_url is None


@pytest.mark.parametrize("code", [302, 307])
def test_redirect_is_not_followed(agent: Loopback, elsewhere: Loopback, code: int) -> None:
    target = f"{elsewhere.url}{ASSET_PATH}"
    serve(agent, Reply(code, b"", {"Location": target}))
    serve(elsewhere, Reply(200, status_body()))
    with pytest.raises(VerifyStatusTransportError, match=f"HTTP {code}") as info:
        client_for(agent).get(ASSET)
    assert info.value.asset_id == ASSET
    assert agent.seen[0].headers["X-Ario-Management-Secret"] == SECRET
    assert elsewhere.seen == []


def test_500_is_a_transport_error(agent: Loopback) -> None:
    serve(agent, Reply(500, "internal failure"))
    with pytest.raises(VerifyStatusTransportError, match="HTTP 500: internal failure") as info:
        client_for(agent).get(ASSET)
    assert info.value.asset_id == ASSET
    assert len(agent.seen) == 1


def test_long_error_bodies_are_truncated(agent: Loopback) -> None:
    serve(agent, Reply(502, "x" * 5000))
    with pytest.raises(VerifyStatusTransportError) as info:
        client_for(agent).get(ASSET)
    assert str(info.value) == "HTTP 502: " + "x" * 200


def test_secret_echoed_by_server_stays_out_of_messages(
    agent: Loopback, caplog: pytest.LogCaptureFixture
) -> None:
    serve(agent, Reply(400, f"bad request, header was {SECRET}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(VerifyStatusTransportError) as info:
        client_for(agent).get(ASSET)
    assert SECRET not in str(info.value)
    assert "***" in str(info.value)
    assert SECRET not in caplog.text


def test_connection_refused_is_a_transport_error(closed_port: int) -> None:
    client = VerifyStatusClient(f"http://127.0.0.1:{closed_port}", SECRET, timeout=1.0)
    with pytest.raises(VerifyStatusTransportError, match="ConnectionError") as info:
        client.get(ASSET)
    assert info.value.asset_id == ASSET
    assert SECRET not in str(info.value)


def test_server_that_never_answers_is_bounded(agent: Loopback) -> None:
    serve(agent, Reply(hang=True))
    started = time.monotonic()
    with pytest.raises(VerifyStatusTransportError):
        client_for(agent, timeout=0.3).get(ASSET)
    assert time.monotonic() - started < 1.5


def test_environment_proxy_is_not_used(
    agent: Loopback, elsewhere: Loopback, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, elsewhere.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    serve(agent, Reply(200, status_body()))
    assert client_for(agent).get(ASSET).outcome == "verified"
    assert elsewhere.seen == []


def test_error_family() -> None:
    for cls in (
        VerifyStatusAuthError,
        VerifyStatusUnknownAssetError,
        VerifyStatusTransportError,
        VerifyStatusLicenseError,
    ):
        assert issubclass(cls, VerifyStatusError)
        assert issubclass(cls, AssetVerificationError)
    assert issubclass(VerifyStatusLicenseError, VerifyStatusTransportError)


# --- cache --------------------------------------------------------------------------------


def test_default_always_refetches(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body()))
    client = client_for(agent)
    client.get(ASSET)
    client.get(ASSET)
    assert len(agent.seen) == 2


def test_cache_hit(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body()), Reply(200, status_body(outcome="tampered")))
    client = client_for(agent)
    first = client.get(ASSET, max_cache_age=60)
    assert client.get(ASSET, max_cache_age=60) is first
    assert len(agent.seen) == 1


def test_every_200_refreshes_the_cache(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body()), Reply(200, status_body(outcome="tampered")))
    client = client_for(agent)
    client.get(ASSET)
    assert client.get(ASSET).outcome == "tampered"
    assert client.get(ASSET, max_cache_age=60).outcome == "tampered"
    assert len(agent.seen) == 2


def test_cache_is_per_asset(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body()))
    serve(agent, Reply(200, status_body("other")), path="/v1/verify-status/other")
    client = client_for(agent)
    client.get(ASSET, max_cache_age=60)
    assert client.get("other", max_cache_age=60).asset_id == "other"
    assert client.get(ASSET, max_cache_age=60).asset_id == ASSET
    assert [s.path for s in agent.seen] == [ASSET_PATH, "/v1/verify-status/other"]


def test_errors_are_not_cached(agent: Loopback) -> None:
    serve(agent, Reply(500, "down"), Reply(200, status_body()))
    client = client_for(agent)
    with pytest.raises(VerifyStatusTransportError):
        client.get(ASSET, max_cache_age=60)
    assert client.get(ASSET, max_cache_age=60).outcome == "verified"
    assert len(agent.seen) == 2


def test_cache_expires(agent: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.monotonic
    offset = [0.0]
    # The client reads time.monotonic at call time; shift the clock forward only.
    monkeypatch.setattr(time, "monotonic", lambda: real() + offset[0])
    serve(agent, Reply(200, status_body()))
    client = client_for(agent)
    client.get(ASSET, max_cache_age=30)
    offset[0] = 29.0
    client.get(ASSET, max_cache_age=30)
    assert len(agent.seen) == 1
    offset[0] = 31.0
    client.get(ASSET, max_cache_age=30)
    assert len(agent.seen) == 2


# --- environment proxies and .netrc -------------------------------------------------------


@pytest.fixture
def proxied(elsewhere: Loopback, monkeypatch: pytest.MonkeyPatch) -> Loopback:
    """Every proxy variable names ``elsewhere``; nothing is exempt."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, elsewhere.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return elsewhere


def not_loopback_by_name(server: Loopback) -> str:
    """``server``'s URL with 127.0.0.1 spelled ``127.1``: the same address, but a host the
    transport does not recognize as loopback, so the environment's proxy would apply."""
    return server.url.replace("127.0.0.1", "127.1")


def test_transport_without_env_proxies_connects_directly(
    agent: Loopback, proxied: Loopback
) -> None:
    serve(agent, Reply(200, status_body()))
    url = not_loopback_by_name(agent) + ASSET_PATH
    request = Request("GET", url, timeout=2.0, max_body=MAX_ANSWER_BYTES)
    proxying, direct = HTTPTransport(), HTTPTransport(env_proxies=False)
    try:
        # Control: by default the transport goes through the environment's proxy.
        assert proxying.send(request).status == 404  # the proxy does not know the path
        assert [s.path for s in proxied.seen] == [url]
        assert direct.send(request).status == 200
    finally:
        proxying.close()
        direct.close()
    assert len(proxied.seen) == 1
    assert [s.path for s in agent.seen] == [ASSET_PATH]


def test_environment_proxy_is_not_used_for_any_host(agent: Loopback, proxied: Loopback) -> None:
    serve(agent, Reply(200, status_body()))
    client = VerifyStatusClient(not_loopback_by_name(agent), SECRET, timeout=2.0)
    assert client.get(ASSET).outcome == "verified"
    assert proxied.seen == []
    assert len(agent.seen) == 1


@pytest.mark.parametrize("injected", ["none", "session"])
def test_netrc_is_ignored(
    agent: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, injected: str
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login intruder password from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    serve(agent, Reply(200, status_body()))
    with requests.Session() as session:  # trust_env is on: requests would read the file
        options: dict[str, Any] = {"session": session} if injected == "session" else {}
        client_for(agent, secret=None, api_key=API_KEY, **options).get(ASSET)
    (seen,) = agent.seen
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"


# --- through an injected transport: deadline, cap, redirects -------------------------------

BASE = "http://agent.invalid:9847"


class Script:
    """A MockTransport handler answering every request in turn (the last one repeats)."""

    def __init__(self, *answers: Response | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[Request] = []

    def __call__(self, request: Request) -> Response:
        self.sent.append(request)
        reply = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(reply, Exception):
            raise reply
        return reply


def answer(status: int = 200, body: Any = b"", headers: dict[str, str] | None = None) -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(status, headers or {}, data, "")


def mock_client(script: Script, **kwargs: Any) -> VerifyStatusClient:
    options: dict[str, Any] = {"timeout": 2.5, "transport": MockTransport(script)}
    options.update(kwargs)
    return VerifyStatusClient(BASE, SECRET, **options)


def test_request_has_a_deadline_a_body_cap_and_no_redirects() -> None:
    script = Script(answer(200, status_body()))
    assert mock_client(script).get(ASSET).outcome == "verified"
    (request,) = script.sent
    assert (request.method, request.url) == ("GET", BASE + ASSET_PATH)
    assert request.timeout == 2.5
    assert 0 < request.max_body == MAX_ANSWER_BYTES <= 256 * 1024
    assert request.follow_redirects is False
    assert request.headers["X-Ario-Management-Secret"] == SECRET


def test_huge_answer_is_refused() -> None:
    # A valid answer (unknown fields are ignored) that is one byte too long.
    body = status_body(padding="")
    body["padding"] = "x" * (MAX_ANSWER_BYTES + 1 - len(json.dumps(body).encode()))
    with pytest.raises(VerifyStatusTransportError, match="larger than") as info:
        mock_client(Script(answer(200, body))).get(ASSET)
    assert info.value.asset_id == ASSET


def test_huge_answer_is_refused_over_http(agent: Loopback) -> None:
    serve(agent, Reply(200, status_body(padding="x" * MAX_ANSWER_BYTES)))
    with pytest.raises(VerifyStatusTransportError, match="larger than"):
        client_for(agent).get(ASSET)


def test_mock_redirect_is_not_followed() -> None:
    script = Script(answer(302, headers={"Location": f"{BASE}/v1/verify-status/other"}))
    with pytest.raises(VerifyStatusTransportError, match="HTTP 302: redirect not followed"):
        mock_client(script).get(ASSET)
    assert len(script.sent) == 1
    assert script.sent[0].follow_redirects is False


def test_same_origin_redirect_is_not_followed(agent: Loopback) -> None:
    serve(agent, Reply(307, b"", {"Location": "/v1/verify-status/moved"}))
    serve(agent, Reply(200, status_body()), path="/v1/verify-status/moved")
    with pytest.raises(VerifyStatusTransportError, match="HTTP 307: redirect not followed"):
        client_for(agent).get(ASSET)
    assert [s.path for s in agent.seen] == [ASSET_PATH]


def test_503_is_the_license_gate_and_is_not_retried() -> None:
    script = Script(answer(503, {"error": "license"}), answer(200, status_body()))
    with pytest.raises(VerifyStatusLicenseError):
        mock_client(script).get(ASSET)
    assert len(script.sent) == 1


def test_deadline_exceeded_is_a_transport_error() -> None:
    script = Script(DeadlineExceededError(f"{BASE}: no complete answer within 2.5s"))
    with pytest.raises(VerifyStatusTransportError, match="timed out") as info:
        mock_client(script).get(ASSET)
    assert info.value.asset_id == ASSET


def test_transport_messages_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(TransportError(f"{BASE}: server said {SECRET}"))
    with caplog.at_level(logging.DEBUG), pytest.raises(VerifyStatusTransportError) as info:
        mock_client(script).get(ASSET)
    assert SECRET not in str(info.value)
    assert "***" in str(info.value)
    assert SECRET not in caplog.text


def test_userinfo_becomes_basic_auth_unless_bearer() -> None:
    script = Script(answer(200, status_body()))
    url = "http://alice:pw@agent.invalid:9847"
    VerifyStatusClient(url, SECRET, transport=MockTransport(script)).get(ASSET)
    VerifyStatusClient(url, api_key=API_KEY, transport=MockTransport(script)).get(ASSET)
    with_secret, with_key = script.sent
    assert with_secret.url == with_key.url == BASE + ASSET_PATH
    assert with_secret.headers["Authorization"] == "Basic " + base64.b64encode(b"alice:pw").decode()
    assert with_key.headers["Authorization"] == f"Bearer {API_KEY}"


def test_session_and_transport_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        mock_client(Script(answer()), session=requests.Session())


@pytest.mark.parametrize("code", [302, 307])
def test_injected_session_does_not_follow_redirects(
    agent: Loopback, elsewhere: Loopback, code: int
) -> None:
    serve(agent, Reply(code, b"", {"Location": f"{elsewhere.url}{ASSET_PATH}"}))
    serve(elsewhere, Reply(200, status_body()))
    with (
        requests.Session() as session,
        pytest.raises(VerifyStatusTransportError, match=f"HTTP {code}"),
    ):
        client_for(agent, session=session).get(ASSET)
    assert elsewhere.seen == []


def test_injected_session_is_used(agent: Loopback) -> None:
    calls: list[str] = []

    class Recording(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, *a: Any, **kw: Any) -> Any:
            calls.append(f"{method!s} {url!s}")
            return super().request(method, url, *a, **kw)

    serve(agent, Reply(200, status_body()))
    with Recording() as session:
        assert client_for(agent, session=session).get(ASSET).outcome == "verified"
    assert calls == [f"GET {agent.url}{ASSET_PATH}"]
