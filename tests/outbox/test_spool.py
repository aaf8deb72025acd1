"""The decision spool: appended lines reach the journal exactly once, and never vanish."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.arweave.dataitem import parse_data_item, verify_data_item
from ario_mlflow.engine import ProofEngine
from ario_mlflow.errors import JournalError
from ario_mlflow.outbox import spool_writer
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.journal import Journal, Writeback
from ario_mlflow.outbox.spool_reader import WalletSigner, ingest_file, ingest_spool, spool_backlog
from ario_mlflow.outbox.spool_writer import EntryTemplate, SpoolWriter, entry_line, spool_dir
from ario_mlflow.outbox.sync import sync_journal
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.envelope import verify_envelope_bytes


def _envelope(engine: ProofEngine, index: int) -> dict[str, Any]:
    return engine.create_commitment(
        event_type="prediction",
        subject={"type": "mlflow_prediction", "decision_id": f"d-{index}"},
        payload_bytes=f"payload-{index}".encode(),
        previous_hash="GENESIS",
    )


def _spool(home: Path, count: int, writer: SpoolWriter | None = None) -> list[bytes]:
    engine, writer = ProofEngine(), writer or SpoolWriter(home)
    written = []
    for index in range(count):
        envelope = _envelope(engine, index)
        data = canonical_json(envelope)
        writer.append(
            entry_line(
                data,
                context_key=f"prediction:d-{index}",
                upload_url="http://127.0.0.1:9",
                gateway_base="http://127.0.0.1:9",
                writebacks=[Writeback("test.kind", {"n": index})],
            )
        )
        written.append(data)
    return written


def test_ingest_journals_each_line_once_with_a_valid_item(ario_home: Path) -> None:
    written = _spool(ario_home, 5)
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 5
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 0  # nothing twice
    for index, data in enumerate(written):
        record = journal.latest_for(f"prediction:d-{index}")
        assert record is not None
        assert record.envelope == data
        item = parse_data_item(record.item)
        assert verify_data_item(item)
        assert item.id == record.tx_id
        assert item.data == data
        assert journal.pending_writebacks_for(record.id) == 1
    assert journal.counts()["pending"] == 5
    assert spool_backlog(ario_home, journal) == 0


@pytest.mark.parametrize("mapped", [True, False], ids=["mapped", "appended"])
def test_an_unfinished_line_waits_and_a_garbage_line_is_kept_aside(
    ario_home: Path, mapped: bool
) -> None:
    writer = SpoolWriter(ario_home, mapped=mapped)
    _spool(ario_home, 1, writer)
    assert writer.mapped is mapped
    writer.append(b"this is not json\n")
    _spool(ario_home, 1, writer)  # the line after the garbage one is journaled
    writer.append(b'{"envelope": {}, "half')  # a write still in progress
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 2
    rejected = spool_dir(ario_home) / "rejected.log"
    assert rejected.read_bytes() == b"this is not json\n"
    assert stat.S_IMODE(rejected.stat().st_mode) == 0o600  # it may hold a decision's data
    assert spool_backlog(ario_home, journal) == len(b'{"envelope": {}, "half')


def test_racing_ingesters_never_journal_a_line_twice(ario_home: Path) -> None:
    """RSA-PSS items differ on every signing: only the offset check prevents twins."""
    _spool(ario_home, 200)
    signer = WalletSigner(ario_home)
    counts: list[int] = []

    def ingest() -> None:
        counts.append(ingest_spool(Journal.at_home(ario_home), ario_home, signer))

    threads = [threading.Thread(target=ingest) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal = Journal.at_home(ario_home)
    assert sum(counts) == 200
    assert journal.counts()["pending"] == 200


def test_a_dead_writers_file_is_deleted_once_journaled_a_live_one_is_kept(
    ario_home: Path,
) -> None:
    live = SpoolWriter(ario_home)
    _spool(ario_home, 2, live)
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, '.');"
        "from tests.outbox.test_spool import _spool; _spool(Path(sys.argv[1]), 3)"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code, str(ario_home)], check=True, cwd=root)
    assert len(list(spool_dir(ario_home).glob("*.jsonl"))) == 2
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 5
    (remaining,) = spool_dir(ario_home).glob("*.jsonl")
    assert remaining == live.path  # the writer that is gone: file deleted, lines journaled


def test_sync_uploads_what_was_only_spooled(local_gateway: Any, ario_home: Path) -> None:
    """A serving process killed before its companion journaled anything loses nothing."""
    written = _spool(ario_home, 3)
    journal = Journal.at_home(ario_home)
    for line in spool_dir(ario_home).glob("*.jsonl"):  # point the entries at the gateway
        lines = line.read_bytes().partition(b"\0")[0]  # a mapped file: zeros past its lines
        entries = [json.loads(raw) for raw in lines.splitlines()]
        for entry in entries:
            entry["upload_url"] = entry["gateway_base"] = local_gateway.url
            entry["writebacks"] = []
        line.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in entries))
    report = sync_journal(journal)
    assert report.uploaded == 3
    assert report.complete
    anchor = ArweaveAnchor()
    for index, data in enumerate(written):
        record = journal.latest_for(f"prediction:d-{index}")
        assert record is not None
        assert record.state == "uploaded"
        assert anchor.fetch_envelope_bytes(record.tx_id) == data


def test_a_forked_child_writes_its_own_file(ario_home: Path) -> None:
    writer = SpoolWriter(ario_home)
    _spool(ario_home, 1, writer)
    pid = os.fork()
    if pid == 0:  # child: append and leave at once
        try:
            _spool(ario_home, 1, writer)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert len(list(spool_dir(ario_home).glob("*.jsonl"))) == 2
    _spool(ario_home, 1, writer)  # the parent's file was not written by the child
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 3
    assert journal.counts()["pending"] == 3
    assert not (spool_dir(ario_home) / "rejected.log").exists()


def test_a_mapped_file_is_reserved_whole_and_cut_to_its_lines_when_sealed(
    ario_home: Path,
) -> None:
    """On this machine's file system the hot path writes through a memory map."""
    writer = SpoolWriter(ario_home)
    _spool(ario_home, 3, writer)
    assert writer.mapped, "the spool should be mapped on ext4/xfs/tmpfs/overlay"
    assert writer.path is not None
    size = writer.path.stat().st_size
    assert size == spool_writer.ROTATE_BYTES  # reserved up front: no SIGBUS on a full disk
    assert writer.path.stat().st_blocks * 512 >= size
    lines = writer.path.read_bytes().partition(b"\0")[0]
    assert lines.count(b"\n") == 3
    writer.close()
    assert writer.path.read_bytes() == lines
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 3
    assert spool_backlog(ario_home, journal) == 0


def test_a_dead_writers_torn_line_is_kept_aside_and_its_file_deleted(ario_home: Path) -> None:
    """A writer killed in the middle of an append leaves zeros after a partial line."""
    pid = os.fork()
    if pid == 0:
        try:
            writer = SpoolWriter(ario_home)
            _spool(ario_home, 2, writer)
            writer.append(b'{"envelope":{"event_id":"torn')  # killed mid-copy
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    (path,) = spool_dir(ario_home).glob("*.jsonl")
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 2
    assert not path.exists()
    assert (spool_dir(ario_home) / "rejected.log").read_bytes() == (
        b'{"envelope":{"event_id":"torn\n'
    )
    assert spool_backlog(ario_home, journal) == 0


_FILE_SIZE_LIMITED_WRITER = """
import json, resource, sys
from pathlib import Path
from ario_mlflow.outbox.spool_writer import SpoolWriter
from ario_mlflow.errors import JournalError

home, lines = Path(sys.argv[1]), json.loads(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (5_000, 5_000))  # no file may pass 5 kB
writer, outcomes = SpoolWriter(home), []
for line in lines:
    try:
        writer.append(line.encode())
        outcomes.append(["ok", writer.mapped])
    except JournalError as exc:
        outcomes.append(["refused", str(exc)])
print(json.dumps(outcomes))
"""


def test_a_file_that_cannot_grow_refuses_decisions_and_tears_nothing(ario_home: Path) -> None:
    """No space to reserve (here a file-size limit, a real one): the writer appends
    instead; a write cut short refuses that decision with a typed error, and the next
    line starts a new file instead of being glued to the torn one."""
    engine = ProofEngine()
    lines = [
        entry_line(
            canonical_json(_envelope(engine, index)),
            context_key=f"prediction:d-{index}",
            upload_url="http://127.0.0.1:9",
            gateway_base="http://127.0.0.1:9",
        ).decode()
        for index in range(20)
    ]
    result = subprocess.run(
        [sys.executable, "-c", _FILE_SIZE_LIMITED_WRITER, str(ario_home), json.dumps(lines)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr  # no crash, no SIGBUS, no SIGXFSZ
    outcomes = json.loads(result.stdout)
    refused = [index for index, (what, _) in enumerate(outcomes) if what == "refused"]
    accepted = [index for index, (what, _) in enumerate(outcomes) if what == "ok"]
    assert refused, "the 5 kB limit must refuse at least one line"
    assert all(mapped is False for what, mapped in outcomes if what == "ok")
    assert all("cannot write the decision spool" in outcomes[i][1] for i in refused)
    assert accepted[-1] > refused[0]  # decisions after a refusal are accepted again
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == len(accepted)
    for index in accepted:
        assert journal.latest_for(f"prediction:d-{index}") is not None
    for index in refused:
        assert journal.latest_for(f"prediction:d-{index}") is None


_WRITER_ON_A_FULL_DISK = """
import json, resource, signal, sys
from pathlib import Path
from ario_mlflow.outbox import spool_writer
from ario_mlflow.outbox.spool_writer import SpoolWriter
from ario_mlflow.errors import JournalError

home, lines = Path(sys.argv[1]), json.loads(sys.argv[2])
writer = SpoolWriter(home, mapped=False)
writer.append(lines[0].encode())  # the disk still had room for this one
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
spool_writer.ROTATE_BYTES = 1  # every later line starts a new file
refused = 0
for line in lines[1:]:
    try:
        writer.append(line.encode())
    except JournalError:
        refused += 1
print(refused)
"""


def test_refused_lines_leave_no_new_files_and_the_written_one_stays(ario_home: Path) -> None:
    """On a full disk each refused line used to leave the (empty) file it was meant to
    start; the file that holds a line is kept."""
    engine = ProofEngine()
    lines = [
        entry_line(
            canonical_json(_envelope(engine, index)),
            context_key=f"prediction:d-{index}",
            upload_url="http://127.0.0.1:9",
            gateway_base="http://127.0.0.1:9",
        ).decode()
        for index in range(5)
    ]
    result = subprocess.run(
        [sys.executable, "-c", _WRITER_ON_A_FULL_DISK, str(ario_home), json.dumps(lines)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"
    (kept,) = spool_dir(ario_home).glob("*.jsonl")
    assert kept.read_text() == lines[0]
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 1


@pytest.mark.parametrize("missing", ["upload_url", "writebacks"])
def test_an_entry_missing_a_field_is_kept_aside_not_lost(ario_home: Path, missing: str) -> None:
    writer = SpoolWriter(ario_home)
    line = entry_line(
        canonical_json(_envelope(ProofEngine(), 0)),
        context_key="k",
        upload_url="http://x",
        gateway_base="http://x",
    )
    entry = json.loads(line)
    del entry[missing]
    writer.append(json.dumps(entry).encode() + b"\n")
    _spool(ario_home, 1, writer)
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 1
    kept = (spool_dir(ario_home) / "rejected.log").read_bytes()
    assert json.loads(kept)["context_key"] == "k"


def test_a_long_lived_writer_rotates_and_sealed_files_are_deleted(
    ario_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that never exits must not fill the disk with journaled lines."""
    monkeypatch.setattr("ario_mlflow.outbox.spool_writer.ROTATE_BYTES", 3000)
    writer = SpoolWriter(ario_home)
    _spool(ario_home, 12, writer)
    assert len(list(spool_dir(ario_home).glob("*.jsonl"))) > 2
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 12
    (current,) = spool_dir(ario_home).glob("*.jsonl")
    assert current == writer.path  # sealed files deleted, the one being written kept
    _spool(ario_home, 1, writer)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == 1


def test_a_full_disk_refuses_the_decision_with_a_typed_error(
    ario_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SpoolWriter(ario_home, mapped=False)  # the mapped form: see the rlimit test
    _spool(ario_home, 1, writer)
    assert writer.path is not None
    following = writer.path.with_name(writer.path.name.replace("~000000.", "~000001."))
    following.symlink_to("/dev/full")  # the next file is on a full device
    monkeypatch.setattr("ario_mlflow.outbox.spool_writer.ROTATE_BYTES", 1)
    with pytest.raises(JournalError, match="cannot write the decision spool"):
        _spool(ario_home, 1, writer)


def test_a_long_file_is_journaled_in_several_transactions(ario_home: Path) -> None:
    writer = SpoolWriter(ario_home)
    _spool(ario_home, 10, writer)
    assert writer.path is not None
    journal = Journal.at_home(ario_home)
    assert ingest_file(journal, writer.path, WalletSigner(ario_home), batch=3) == 10
    writer.close()  # a mapped file is cut down to its lines
    assert journal.spool_offset(writer.path.name) == writer.path.stat().st_size
    assert journal.counts()["pending"] == 10


# --- pre-serialized lines (EntryTemplate) ----------------------------------------------

MARKER = "\x00ario-slot\x00"
TRICKY_TEXTS = [
    "",
    '"',
    "\\",
    'a"b\\c',
    "line\nbreak\r\n",
    "\x00",
    "\x1f\x7f\t\b\f",
    "\u2028\u2029",
    "ünïcödé ✓",
    "😀 \U0001f9ea",
    json.dumps({"a": [1, 'b"c'], "d": None, "e": "\n"}),
    '{"envelope": {}}\n',
    MARKER,
    "x" + MARKER + "y",
]


_STREAM: dict[str, Any] = {
    "upload_url": "http://127.0.0.1:9/up\u00e9",
    "gateway_base": "http://127.0.0.1:9",
    "writebacks": [
        Writeback("test.payload", {"run": "r-1", "nested": {"k": [1, "v"]}}, False),
        Writeback("test.tags", {"n": 2}),
    ],
    "writeback_delay": 2.5,
}


def _template(slot: str | None = "payload") -> EntryTemplate:
    return EntryTemplate(**_STREAM, slot=slot)


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_a_template_line_is_exactly_the_entry_it_stands_for(text: str) -> None:
    envelope = _envelope(ProofEngine(), 0)
    data = canonical_json(envelope)
    context_key = f"prediction:{text}"
    line = _template().line(data, context_key, text)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1  # one line per entry, whatever the strings hold
    assert json.loads(line) == {
        "envelope": envelope,
        "context_key": context_key,
        "upload_url": "http://127.0.0.1:9/up\u00e9",
        "gateway_base": "http://127.0.0.1:9",
        "writebacks": [
            ["test.payload", {"run": "r-1", "nested": {"k": [1, "v"]}, "payload": text}, False],
            ["test.tags", {"n": 2}, True],
        ],
        "writeback_delay": 2.5,
    }
    # The slot-less line of the same stream, and entry_line, are the same entry.
    plain = json.loads(_template(slot=None).line(data, context_key))
    assert plain["writebacks"][0][1] == {"run": "r-1", "nested": {"k": [1, "v"]}}
    assert entry_line(data, context_key=context_key, **_STREAM) == _template(slot=None).line(
        data, context_key
    )


def test_a_template_slot_replaces_a_spec_value_of_the_same_name() -> None:
    template = EntryTemplate(
        upload_url="u",
        gateway_base="g",
        writebacks=[Writeback("k", {"payload": "old", "z": 1})],
        slot="payload",
    )
    entry = json.loads(template.line(b"{}", "key", "new"))
    assert entry["writebacks"] == [["k", {"payload": "new", "z": 1}, True]]


def test_a_template_slot_needs_a_value_and_a_write_back() -> None:
    with pytest.raises(ValueError, match="needs a value"):
        _template().line(b"{}", "key")
    with pytest.raises(ValueError, match="needs a write-back"):
        EntryTemplate(upload_url="u", gateway_base="g", slot="payload")


@pytest.mark.parametrize("slot", [None, "payload"])
@pytest.mark.parametrize(
    "spec",
    [{"x": MARKER}, {"x": [1, {"y": MARKER}]}, {MARKER: 1}],
    ids=["value", "nested", "key"],
)
def test_a_spec_holding_the_slot_marker_is_refused(slot: str | None, spec: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="slot marker"):
        EntryTemplate(
            upload_url="u", gateway_base="g", writebacks=[Writeback("k", spec)], slot=slot
        )
    if slot is None:
        with pytest.raises(ValueError, match="slot marker"):
            entry_line(
                b"{}",
                context_key="k",
                upload_url="u",
                gateway_base="g",
                writebacks=[Writeback("k", spec)],
            )


def test_template_lines_are_ingested_with_their_payload_text(ario_home: Path) -> None:
    engine, writer, template = ProofEngine(), SpoolWriter(ario_home), _template()
    written = []
    for index, text in enumerate(TRICKY_TEXTS):
        envelope = _envelope(engine, index)
        data = canonical_json(envelope)
        key = f"prediction:d-{index}:{text}"
        writer.append(template.line(data, key, text))
        written.append((key, data, text))
    journal = Journal.at_home(ario_home)
    assert ingest_spool(journal, ario_home, WalletSigner(ario_home)) == len(TRICKY_TEXTS)
    assert not (spool_dir(ario_home) / "rejected.log").exists()
    for index, (key, data, text) in enumerate(written):
        record = journal.latest_for(key)
        assert record is not None
        assert record.context_key == key
        assert record.envelope == data
        assert verify_envelope_bytes(data, payload_bytes=f"payload-{index}".encode()).ok
        item = parse_data_item(record.item)
        assert verify_data_item(item)
        assert item.data == data
        assert journal.pending_writebacks_for(record.id) == 2
        # The first write-back may run before the upload: claim it and read its spec.
        (claimed,) = journal.claim_writebacks_for(record.id, "test", 60.0)
        assert claimed.kind == "test.payload"
        assert claimed.spec == {"run": "r-1", "nested": {"k": [1, "v"]}, "payload": text}
