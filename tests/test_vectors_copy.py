"""``tests/vectors`` is a copy of ``../shared/vectors``: complete, unaltered, not drifting.

The copy lets a fresh clone run the conformance tests. Two references keep it honest:
``tests/vectors.sha256`` (``sha256sum`` format, checked on every run, clone or not) and,
when the project's ``../shared/vectors`` sits beside the repository, that directory itself,
compared byte for byte. To refresh the copy after ``../shared/vectors`` changed::

    rm -rf tests/vectors && cp -r ../shared/vectors tests/vectors && chmod -R u+w tests/vectors
    (cd tests/vectors && find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum) \\
        > tests/vectors.sha256
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.conftest import IN_REPO_VECTORS, PROJECT_ROOT

SHARED_VECTORS = PROJECT_ROOT.parent / "shared" / "vectors"
MANIFEST = PROJECT_ROOT / "tests" / "vectors.sha256"

#: What the other tests open by name (the corpus tests also glob; their counts are pinned
#: in ``test_corpus_is_present_and_complete``). Every one must be in the manifest.
USED_BY_TESTS = (
    *(
        f"original-0.3.0/{event}/{name}"
        for event in (
            "training",
            "dataset-implicit-0",
            "dataset-standalone",
            "registration",
            "promotion",
            "prediction-0",
            "prediction-1",
        )
        for name in ("envelope.json", "payload.bin", "meta.json")
    ),
    "agent-envelope-asset-registered-01.json",
    "ar-io-proof-0.2.0/ario.events-v1/events-checkpoint-01.json",
    "ar-io-proof-0.2.0/ario.events-v1/events-checkpoint-chain-01.json",
)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its relative POSIX path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _manifest() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        digest, name = line.split("  ", 1)
        entries[name] = digest
    return entries


def test_in_repo_corpus_is_complete_and_unaltered() -> None:
    """Checked in every clone: the copy holds exactly the pinned files, byte for byte."""
    pinned = _manifest()
    assert set(USED_BY_TESTS) <= set(pinned)
    found = {
        name: hashlib.sha256(data).hexdigest() for name, data in _tree(IN_REPO_VECTORS).items()
    }
    assert sorted(found) == sorted(pinned), (
        "tests/vectors and tests/vectors.sha256 list other files"
    )
    altered = sorted(name for name, digest in pinned.items() if found[name] != digest)
    assert altered == [], f"tests/vectors differs from tests/vectors.sha256: {altered}"


def test_in_repo_copy_is_identical_to_shared() -> None:
    """Beside ``../shared``: the same file set, byte for byte; on its own: what tests read."""
    ours = _tree(IN_REPO_VECTORS)
    if not SHARED_VECTORS.is_dir():  # a clone on its own: every file a test opens is here
        missing = sorted(name for name in USED_BY_TESTS if not ours.get(name))
        assert missing == [], f"tests/vectors lacks (or has empty) {missing}"
        return
    theirs = _tree(SHARED_VECTORS)
    refresh = f"tests/vectors has drifted from {SHARED_VECTORS}: refresh it (module docstring)"
    assert sorted(ours) == sorted(theirs), refresh
    changed = sorted(name for name in ours if ours[name] != theirs[name])
    assert changed == [], f"{refresh}: {changed}"
