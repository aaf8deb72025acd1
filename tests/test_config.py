"""Settings: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ario_mlflow.config import DEFAULT_UPLOAD_URL, load_settings, split_list
from ario_mlflow.errors import ConfigError


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.home == Path.home() / ".ario-mlflow"
    assert settings.upload_url == DEFAULT_UPLOAD_URL
    assert settings.gateways == ("turbo-gateway.com", "ardrive.net")
    assert settings.trusted_keys == ()
    assert settings.capture_otel is True
    assert settings.verify_url is None


def test_gateways_primary_first_and_explicit_list_wins() -> None:
    assert load_settings({"ARIO_MLFLOW_GATEWAY_HOST": "gw.example"}).gateways == (
        "gw.example",
        "turbo-gateway.com",
        "ardrive.net",
    )
    env = {"ARIO_MLFLOW_GATEWAYS": " http://127.0.0.1:1 , ,b.example, b.example"}
    assert load_settings(env).gateways == ("http://127.0.0.1:1", "b.example")


def test_urls_and_lists() -> None:
    env = {
        "ARIO_MLFLOW_UPLOAD_URL": "http://127.0.0.1:9/",
        "ARIO_MLFLOW_ARIO_VERIFY_URL": "http://127.0.0.1:9/verify/",
        "ARIO_MLFLOW_TRUSTED_KEYS": "AB" * 32 + "," + "cd" * 32,
        "ARIO_MLFLOW_CAPTURE_OTEL": "Off",
        "ARIO_MLFLOW_HOME": "~/x",
    }
    settings = load_settings(env)
    assert settings.upload_url == "http://127.0.0.1:9"
    assert settings.verify_url == "http://127.0.0.1:9/verify"
    assert settings.trusted_keys == ("ab" * 32, "cd" * 32)
    assert settings.capture_otel is False
    assert settings.home == Path("~/x").expanduser()
    assert split_list("") == ()


def test_background_mode() -> None:
    assert load_settings({}).background == "process"
    assert load_settings({"ARIO_MLFLOW_BACKGROUND": " Thread "}).background == "thread"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ARIO_MLFLOW_UPLOAD_URL", "upload.ardrive.io"),
        ("ARIO_MLFLOW_TRUSTED_KEYS", "abc"),
        ("ARIO_MLFLOW_ANCHOR_DEADLINE", "soon"),
        ("ARIO_MLFLOW_ANCHOR_DEADLINE", "-1"),
        ("ARIO_MLFLOW_CONNECT_TIMEOUT", "inf"),
        ("ARIO_MLFLOW_MAX_ATTEMPTS", "0"),
        ("ARIO_MLFLOW_MAX_ATTEMPTS", "many"),
        ("ARIO_MLFLOW_BACKGROUND", "daemon"),
        ("ARIO_MLFLOW_HOME", "~no-such-user-here/x"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
