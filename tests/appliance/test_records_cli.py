"""`seedqa users`, `seedqa audit` and `seedqa report` from the command line.

One shared bench (a captured sample and an account per role) is copied for each
test; the PINs reach the commands through $SEEDQA_PIN and $SEEDQA_NEW_PIN, as a
script would pass them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.exports import stored_report
from appliance.store import Database, sqlite_url
from tests.appliance.records_bench import PINS, Bench


@dataclass(frozen=True)
class Run:
    status: int
    out: str
    err: str


@pytest.fixture
def data(bench: Bench, tmp_path: Path, monkeypatch) -> Path:
    root = bench.copy(tmp_path / "data")
    monkeypatch.setenv("SEEDQA_DATA_DIR", str(root))
    monkeypatch.delenv("SEEDQA_DATABASE_URL", raising=False)
    monkeypatch.delenv("SEEDQA_PIN", raising=False)
    monkeypatch.delenv("SEEDQA_NEW_PIN", raising=False)
    return root


@pytest.fixture
def seedqa(capsys, monkeypatch) -> Callable[..., Run]:
    def run(*argv: object, pin: str | None = None, new_pin: str | None = None) -> Run:
        for name, value in (("SEEDQA_PIN", pin), ("SEEDQA_NEW_PIN", new_pin)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        status = main(["-q", *map(str, argv)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return Run(status, out, err)

    return run


def test_users_add_and_list(data, seedqa):
    added = seedqa(
        "users",
        "add",
        "Nina",
        "--role",
        "qa-lead",
        "--user",
        "eve",
        pin=PINS["eve"],
        new_pin="5555",
    )
    listed = seedqa("users", "list", "--json")

    assert added.status == 0 and "account nina added as qa_lead" in added.out
    assert {(u["name"], u["role"]) for u in json.loads(listed.out)} == {
        ("eve", "engineer"),
        ("nina", "qa_lead"),
        ("olga", "operator"),
        ("quinn", "qa_lead"),
    }


def test_an_operator_cannot_add_users_and_is_told_in_one_line(data, seedqa):
    run = seedqa(
        "users",
        "add",
        "mallory",
        "--role",
        "engineer",
        "--user",
        "olga",
        pin=PINS["olga"],
        new_pin="6666",
    )

    assert run.status == 2
    assert run.err.strip().splitlines() == [
        "seedqa: olga (operator) may not manage users; that needs the role engineer; "
        "the refusal is recorded in the audit trail"
    ]
    audit = seedqa("audit", "list", "--last", "1", "--json")
    assert json.loads(audit.out)[0]["outcome"] == "refused"


def test_users_passwd_changes_ones_own_pin(data, seedqa):
    assert (
        seedqa("users", "passwd", "olga", pin=PINS["olga"], new_pin="7777").status == 0
    )
    assert seedqa("users", "list", pin="7777").status == 0
    refused = seedqa(
        "report",
        "amend",
        "1",
        "1",
        "pure",
        "--reason",
        "x y",
        "--user",
        "olga",
        pin=PINS["olga"],
    )
    assert refused.status == 2 and "do not match an account" in refused.err


def _first_seed(data: Path, sample_id: int) -> dict:
    db = Database.open(sqlite_url(data / "seedqa.db"))
    try:
        return stored_report(db, sample_id)["seeds"][0]
    finally:
        db.close()


def test_report_amend_export_and_verify(data, bench, seedqa, tmp_path):
    history = json.loads(seedqa("report", "history", bench.sample_id, "--json").out)
    assert history == {"report": {"version": 1, "status": "original"}, "amendments": []}

    seed = _first_seed(data, bench.sample_id)
    amended = seedqa(
        "report",
        "amend",
        bench.sample_id,
        seed["index"],
        "broken" if seed["fused_class"] != "broken" else "pure",
        "--reason",
        "crack seen under the lens",
        "--user",
        "quinn",
        pin=PINS["quinn"],
    )
    exported = seedqa(
        "report",
        "export",
        bench.sample_id,
        "--out",
        tmp_path / "out",
        "--user",
        "quinn",
        pin=PINS["quinn"],
    )
    pdf = tmp_path / "out" / f"sample-{bench.sample_id}-v2.pdf"
    genuine = seedqa("report", "verify", pdf)

    assert amended.status == 0 and "amended, version 2" in amended.out
    assert exported.status == 0 and str(pdf) in exported.out
    assert genuine.status == 0 and "genuine and unchanged" in genuine.out
    report = json.loads((pdf.with_suffix(".json")).read_text())
    assert report["report"] == {"version": 2, "status": "amended"}
    assert report["amendments"][0]["reason"] == "crack seen under the lens"

    data_bytes = bytearray(pdf.read_bytes())
    data_bytes[100] ^= 0x20
    pdf.write_bytes(bytes(data_bytes))
    changed = seedqa("report", "verify", pdf)
    assert changed.status == 1
    assert f"NOT GENUINE: {pdf.name} has changed" in changed.out


def test_audit_verify_exits_1_naming_the_edited_row(data, seedqa):
    assert seedqa("audit", "verify").status == 0

    with sqlite3.connect(data / "seedqa.db") as connection:
        connection.execute("DROP TRIGGER audit_log_no_update")
        connection.execute("UPDATE audit_log SET actor = 'mallory' WHERE id = 3")
    run = seedqa("audit", "verify")

    assert run.status == 1
    assert run.out.startswith("AUDIT TRAIL BROKEN at row 3: its contents")


def test_an_export_without_a_signed_in_qa_lead_is_refused(
    data, bench, seedqa, tmp_path
):
    run = seedqa("report", "export", bench.sample_id, "--out", tmp_path / "o")

    assert run.status == 2 and "sign in with --user" in run.err
    assert not (tmp_path / "o").exists()


def test_report_verify_without_a_manifest_is_a_user_error(data, seedqa, tmp_path):
    stray = tmp_path / "stray.pdf"
    stray.write_bytes(b"%PDF-1.4")

    run = seedqa("report", "verify", stray)

    assert run.status == 2 and "manifest.json" in run.err
