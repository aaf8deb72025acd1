"""The ``spec_version`` grammar and the registry of accepted envelope profiles."""

from __future__ import annotations

import re

#: The profile this package mints.
SPEC_VERSION = "ario.mlflow/v1"
#: Majors a verifier accepts (fail closed: anything else is unsupported).
ACCEPTED_SPEC_VERSIONS = frozenset({"ario.agent/v1", "ario.mlflow/v1", "ario.events/v1"})
#: Profiles whose top-level ``_*`` keys are unsigned annotations (legacy envelopes too).
UNDERSCORE_STRIPPING_MAJORS = frozenset({"ario.mlflow/v1"})

_GRAMMAR = re.compile(r"(?P<major>[a-z][a-z0-9._-]*/v[0-9]+)(?:\.[0-9]+)?")


def spec_major(value: object) -> str | None:
    """The ``<namespace>/v<major>`` part of a well-formed version, else ``None``.

    ``ario.mlflow/v1.3`` → ``ario.mlflow/v1``; ``ario.mlflow/v1.``, ``…/v1.x`` and
    non-strings → ``None``. ``ario.mlflow/v10`` is its own major, not v1.
    """
    if not isinstance(value, str):
        return None
    match = _GRAMMAR.fullmatch(value)
    return match.group("major") if match else None


def spec_version_supported(value: object) -> bool:
    """True iff ``value`` is a well-formed version of an accepted major."""
    return spec_major(value) in ACCEPTED_SPEC_VERSIONS


def strips_underscore_keys(value: object) -> bool:
    """True when top-level ``_*`` keys are outside the signed scope for this version."""
    return value is None or spec_major(value) in UNDERSCORE_STRIPPING_MAJORS
