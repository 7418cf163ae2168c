"""Roles, amendments, the audit trail and signed exports, on a real SQLite bench."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from appliance.bundle import load_bundle
from appliance.classifier import SeedClassifier
from appliance.exports import seeds_csv, stored_report
from appliance.records.accounts import (
    PERMISSIONS,
    AccountError,
    Action,
    AuthenticationFailed,
    PermissionDenied,
    Role,
    check_pin,
    hash_pin,
)
from appliance.records.amendments import AmendmentError
from appliance.records.audit import list_entries
from appliance.records.exporting import ExportSelection
from appliance.records.service import Records
from appliance.records.signing import key_path
from appliance.rigs import open_rig
from tests.appliance.records_bench import (
    PINS,
    ROLES,
    Bench,
    capture,
    open_records,
)


@pytest.fixture
def records(bench: Bench, tmp_path: Path) -> Iterator[Records]:
    service = open_records(bench.copy(tmp_path / "data"))
    yield service
    service.db.close()


def _sign_in(records: Records, name: str):
    return records.sign_in(name, PINS[name])


def _refusals(records: Records) -> list[tuple[str, str, str]]:
    return [
        (r.actor, r.action, r.subject)
        for r in list_entries(records.db)
        if r.outcome == "refused"
    ]


def _raw(records: Records) -> sqlite3.Connection:
    return sqlite3.connect(records.settings.data_dir / "seedqa.db")


def _seed_to_amend(records: Records, sample_id: int) -> tuple[int, str, str]:
    report = stored_report(records.db, sample_id)
    seed = report["seeds"][0]
    classes = report["sample"]["model"]["classes"]
    other = next(c for c in classes if c != seed["fused_class"])
    return seed["index"], seed["fused_class"], other


# Roles: the whole table, then each real action by each role


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_every_role_may_do_exactly_its_actions(records, role, action):
    name = next(n for n, r in ROLES.items() if r is role)
    actor = _sign_in(records, name)

    if action in PERMISSIONS[role]:
        records.require(actor, action, "thing:1")
        assert _refusals(records) == []
    else:
        with pytest.raises(PermissionDenied, match=f"{name} \\({role.value}\\)"):
            records.require(actor, action, "thing:1")
        assert _refusals(records) == [(name, action.value, "thing:1")]


def _do_capture(records, actor, bench):
    classifier = SeedClassifier(load_bundle(bench.bundle), numeric="fp32")
    return capture(records, actor, classifier, code="S-0002", seed=6)


def _do_amend(records, actor, bench):
    index, _, other = _seed_to_amend(records, bench.sample_id)
    return records.amend(
        actor, bench.sample_id, seed_index=index, new_class=other, reason="re-read"
    )


def _do_export(records, actor, bench):
    out = records.settings.data_dir.parent / "export"
    return records.export(
        actor, ExportSelection(sample_id=bench.sample_id), formats=["csv"], out=out
    )


def _do_calibrate(records, actor, bench):
    handle = open_rig("simulated")
    try:
        return records.calibrate(actor, handle)
    finally:
        handle.close()


def _do_add_user(records, actor, bench):
    return records.add_user(actor, "newcomer", Role.OPERATOR, "1111")


OPERATIONS = {
    Action.CAPTURE: _do_capture,
    Action.AMEND: _do_amend,
    Action.EXPORT: _do_export,
    Action.CALIBRATE: _do_calibrate,
    Action.MANAGE_USERS: _do_add_user,
}


@pytest.mark.parametrize("name", sorted(ROLES))
@pytest.mark.parametrize("action", list(OPERATIONS), ids=lambda a: a.value)
def test_each_action_works_for_its_role_and_is_refused_and_audited_for_others(
    records, bench, name, action
):
    actor = _sign_in(records, name)
    rows_before = len(list_entries(records.db))

    if action in PERMISSIONS[ROLES[name]]:
        assert OPERATIONS[action](records, actor, bench) is not None
        assert _refusals(records) == []
        done = [r for r in list_entries(records.db)[rows_before:] if r.outcome == "ok"]
        assert done and done[-1].actor == name
    else:
        with pytest.raises(PermissionDenied):
            OPERATIONS[action](records, actor, bench)
        refused = _refusals(records)
        assert [(a, act) for a, act, _ in refused] == [(name, action.value)]
    assert records.verify_audit().ok


def test_an_open_bench_records_the_capture_under_the_name_given(records, bench):
    rows = list_entries(records.db, subject=f"sample:{bench.sample_id}")

    assert [(r.action, r.actor, r.role) for r in rows] == [
        ("capture", "Demo", "unregistered")
    ]
    assert len(rows[0].details["content_sha256"]) == 64


def test_the_first_account_must_be_an_engineer(tmp_path):
    records = open_records(tmp_path / "data")
    try:
        with pytest.raises(AccountError, match="first account must be an engineer"):
            records.add_user(records.open_bench(), "olga", Role.OPERATOR, "1234")
        assert not records.has_accounts()
    finally:
        records.db.close()


def test_once_accounts_exist_an_unsigned_actor_is_refused_and_audited(records, bench):
    with pytest.raises(PermissionDenied, match="sign in with --user"):
        _do_capture(records, records.open_bench("Walk In"), bench)

    assert _refusals(records) == [("Walk In", "capture", "lot:LOT-1")]


def test_a_wrong_pin_is_refused_and_the_attempt_audited(records):
    with pytest.raises(AuthenticationFailed):
        records.sign_in("quinn", "not-the-pin")
    with pytest.raises(AuthenticationFailed):
        records.sign_in("nobody", "whatever")

    logins = [
        (r.actor, r.outcome) for r in list_entries(records.db) if r.action == "login"
    ]
    assert logins[-2:] == [("quinn", "refused"), ("nobody", "refused")]


def test_pins_are_stored_as_salted_scrypt_hashes(records):
    first, second = hash_pin("1234"), hash_pin("1234")

    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert check_pin("1234", first) and not check_pin("1235", first)
    with _raw(records) as connection:
        stored = [h for (h,) in connection.execute("SELECT pin_hash FROM users")]
    assert not any(pin in h for h in stored for pin in PINS.values())


def test_a_user_changes_their_own_pin_but_not_anothers(records):
    olga = _sign_in(records, "olga")
    records.change_pin(olga, "olga", "new-pin-1")
    assert records.sign_in("olga", "new-pin-1").name == "olga"

    with pytest.raises(PermissionDenied):
        records.change_pin(olga, "quinn", "stolen-1")
    records.change_pin(_sign_in(records, "eve"), "quinn", "reset-11")
    assert records.sign_in("quinn", "reset-11").role is Role.QA_LEAD


# Amendments


def test_an_amendment_keeps_the_measured_class_and_recomputes_the_figures(
    records, bench
):
    quinn = _sign_in(records, "quinn")
    before = stored_report(records.db, bench.sample_id)
    index, measured, other = _seed_to_amend(records, bench.sample_id)

    first = records.amend(
        quinn, bench.sample_id, seed_index=index, new_class=other, reason="  mould\n"
    )
    after = stored_report(records.db, bench.sample_id)

    assert first.version == 2 and first.reason == "mould"
    assert after["report"] == {"version": 2, "status": "amended"}
    seed = after["seeds"][0]
    assert (seed["fused_class"], seed["measured_class"]) == (other, measured)
    counts, old = after["summary"]["counts"], before["summary"]["counts"]
    assert counts[other] == old[other] + 1 and counts[measured] == old[measured] - 1
    assert after["amendments"] == [first.to_json()]
    assert after["amendments"][0]["by"] == "quinn"

    second = records.amend(
        quinn, bench.sample_id, seed_index=index, new_class=measured, reason="undo"
    )
    history = stored_report(records.db, bench.sample_id)
    assert second.version == 3 and history["report"]["version"] == 3
    assert history["summary"]["counts"] == old
    assert [a["to"] for a in history["amendments"]] == [other, measured]
    assert records.verify_audit().ok


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reason": "  "}, "reason has 0 characters"),
        ({"new_class": "gravel"}, "not a class"),
        ({"seed_index": 10_000}, "no seed 10000"),
    ],
)
def test_a_bad_amendment_is_refused_and_nothing_changes(
    records, bench, change, message
):
    quinn = _sign_in(records, "quinn")
    index, _, other = _seed_to_amend(records, bench.sample_id)
    arguments = {"seed_index": index, "new_class": other, "reason": "why", **change}

    with pytest.raises(AmendmentError, match=message):
        records.amend(quinn, bench.sample_id, **arguments)

    assert stored_report(records.db, bench.sample_id)["report"]["version"] == 1


def test_an_open_bench_cannot_amend(tmp_path, bench):
    records = open_records(bench.copy(tmp_path / "fresh"))
    try:
        with _raw(records) as connection:
            connection.execute("DELETE FROM users")
        with pytest.raises(PermissionDenied):
            _do_amend(records, records.open_bench("Walk In"), bench)
    finally:
        records.db.close()


# Tamper evidence


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"]
)
def test_the_database_refuses_to_change_the_audit_trail(records, statement):
    with (
        _raw(records) as connection,
        pytest.raises(sqlite3.DatabaseError, match="append-only"),
    ):
        connection.execute(statement)

    assert records.verify_audit().ok


def test_audit_verify_names_an_audit_row_edited_with_raw_sql(records):
    rows = list_entries(records.db)
    target = rows[2]
    with _raw(records) as connection:
        connection.execute("DROP TRIGGER audit_log_no_update")
        connection.execute(
            "UPDATE audit_log SET actor = 'mallory' WHERE id = ?", (target.id,)
        )

    report = records.verify_audit()

    assert not report.ok
    assert report.problems[0].row == target.id
    assert "edited" in report.problems[0].what


def test_audit_verify_names_the_row_after_one_removed(records):
    rows = list_entries(records.db)
    with _raw(records) as connection:
        connection.execute("DROP TRIGGER audit_log_no_delete")
        connection.execute("DELETE FROM audit_log WHERE id = ?", (rows[1].id,))

    report = records.verify_audit()

    assert report.problems[0].row == rows[2].id
    assert "removed, inserted or changed" in report.problems[0].what


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE seeds SET fused_class = 'pure' WHERE fused_class != 'pure' "
        "AND sample_id = ?",
        "UPDATE samples SET lot = 'LOT-9' WHERE id = ?",
        "UPDATE captures SET image_sha256 = replace(image_sha256, 'a', 'b') "
        "WHERE sample_id = ?",
    ],
    ids=["seed-class", "lot", "image"],
)
def test_audit_verify_catches_a_stored_result_edited_with_raw_sql(
    records, bench, statement
):
    with _raw(records) as connection:
        assert connection.execute(statement, (bench.sample_id,)).rowcount > 0

    report = records.verify_audit()

    capture_row = list_entries(records.db, subject=f"sample:{bench.sample_id}")[0]
    assert [p.row for p in report.problems] == [capture_row.id]
    assert f"sample {bench.sample_id}'s stored content" in report.problems[0].what


def test_audit_verify_catches_a_calibration_edited_with_raw_sql(records):
    with _raw(records) as connection:
        connection.execute("UPDATE calibrations SET mm_per_px_top = 0.2")

    report = records.verify_audit()

    calibrate_row = next(r for r in list_entries(records.db) if r.action == "calibrate")
    assert [p.row for p in report.problems] == [calibrate_row.id]
    assert "calibration 1" in report.problems[0].what


def test_a_sample_inserted_behind_the_appliance_is_caught(records, bench):
    with _raw(records) as connection:
        connection.execute(
            "INSERT INTO samples (rig_id, lot, code, recipe, operator, captured_at, "
            "status) SELECT rig_id, lot, 'FAKE', recipe, operator, captured_at, "
            "status FROM samples WHERE id = ?",
            (bench.sample_id,),
        )

    report = records.verify_audit()

    assert [p.row for p in report.problems] == [None]
    assert "no audit row records its capture" in report.problems[0].what


# Signed exports


@dataclass(frozen=True)
class Exported:
    """A copy of the bench with one signed export of the first sample."""

    root: Path
    directory: Path
    files: tuple[Path, ...]
    manifest: Path


@pytest.fixture(scope="module")
def exported_bench(bench, tmp_path_factory) -> Exported:
    base = tmp_path_factory.mktemp("exported")
    records = open_records(bench.copy(base / "data"))
    try:
        export = records.export(
            _sign_in(records, "quinn"),
            ExportSelection(sample_id=bench.sample_id),
            formats=["pdf", "csv", "json"],
            out=base / "export",
        )
    finally:
        records.db.close()
    return Exported(base, export.directory, export.files, export.manifest)


@pytest.fixture
def export(exported_bench, tmp_path) -> Exported:
    """A private copy of the exported bench; `records` here works on it."""
    base = tmp_path / "exported"
    shutil.copytree(exported_bench.root, base)
    moved = exported_bench.root
    return Exported(
        base,
        base / exported_bench.directory.relative_to(moved),
        tuple(base / p.relative_to(moved) for p in exported_bench.files),
        base / exported_bench.manifest.relative_to(moved),
    )


@pytest.fixture
def exported_records(export) -> Iterator[Records]:
    service = open_records(export.root / "data")
    yield service
    service.db.close()


def test_an_export_is_signed_and_verifies(exported_records, export, bench):
    names = sorted(p.name for p in export.files)
    assert names == [f"sample-{bench.sample_id}-v1.{f}" for f in ("csv", "json", "pdf")]
    assert all(p.parent == export.directory for p in export.files)

    for path in [*export.files, export.manifest, export.directory]:
        assert exported_records.verify_export(path).ok, path
    manifest = json.loads(export.manifest.read_text())["manifest"]
    assert manifest["samples"][0]["report_version"] == 1
    assert manifest["audit_head"]["row"] > 0
    assert export.files[0].read_bytes().startswith(b"%PDF")
    assert list_entries(exported_records.db)[-1].action == "export"


@pytest.mark.parametrize("kind", ["pdf", "csv", "json"])
def test_one_flipped_byte_in_an_export_fails_verify_naming_the_file(
    exported_records, export, kind
):
    path = next(p for p in export.files if p.suffix == f".{kind}")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    result = exported_records.verify_export(path)

    assert not result.ok
    assert result.problems == (result.problems[0],)
    assert path.name in result.problems[0] and "has changed" in result.problems[0]
    others = [p for p in export.files if p != path]
    assert all(exported_records.verify_export(p).ok for p in others)


def test_a_flipped_byte_in_the_manifest_breaks_its_signature(exported_records, export):
    text = export.manifest.read_text()
    export.manifest.write_text(
        text.replace('"report_version": 1', '"report_version": 2')
    )

    result = exported_records.verify_export(export.files[0])

    assert any("signature" in p for p in result.problems)


def test_an_export_signed_by_another_appliance_fails(
    exported_records, export, tmp_path
):
    other = open_records(tmp_path / "other")
    try:
        pem = tmp_path / "other.pem"
        pem.write_text(other.signing_key().public_pem())
    finally:
        other.db.close()

    result = exported_records.verify_export(export.files[0], key=pem)

    assert any("not by this appliance's key" in p for p in result.problems)


def test_the_appliance_key_is_private_to_its_owner(exported_records, export):
    path = key_path(exported_records.settings.data_dir)

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_an_export_refuses_a_folder_that_is_not_empty(records, bench, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.txt").write_text("x")

    with pytest.raises(ValueError, match="not an empty folder"):
        records.export(
            _sign_in(records, "quinn"),
            ExportSelection(sample_id=bench.sample_id),
            formats=["csv"],
            out=tmp_path / "full",
        )


def test_a_lot_and_a_date_range_export_every_matching_sample(records, bench):
    quinn = _sign_in(records, "quinn")
    captured = stored_report(records.db, bench.second_id)["sample"]["captured_at"]
    folder = records.settings.data_dir.parent

    by_lot = records.export(
        quinn, ExportSelection(lot="lot-1".upper()), formats=["json"], out=folder / "a"
    )
    by_date = records.export(
        quinn,
        ExportSelection(since=datetime.fromisoformat(captured)),
        formats=["json"],
        out=folder / "b",
    )

    assert [s["id"] for s in by_lot.samples] == [bench.sample_id, bench.second_id]
    assert [s["id"] for s in by_date.samples] == [bench.second_id]
    assert records.verify_export(by_lot.directory).ok
    with pytest.raises(ValueError, match="no stored sample matches lot:LOT-2"):
        records.export(
            quinn, ExportSelection(lot="LOT-2"), formats=["json"], out=folder / "c"
        )


# CSV


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_would_start_a_formula_are_neutralised(start):
    hostile = f'{start}HYPERLINK("http://x")'
    report = {
        "sample": {"id": 1, "lot": hostile, "code": hostile},
        "report": {"version": 1},
        "seeds": [{"index": 1, "fused_class": hostile, "flags": [hostile]}],
    }

    rows = list(csv.reader(io.StringIO(seeds_csv(report))))

    cells = [rows[1][i] for i in (1, 2, 4, 9)]
    assert all(cell == "'" + hostile for cell in cells), cells


def test_a_trail_cut_short_is_caught_against_a_signed_export(exported_records, export):
    records = exported_records
    head = json.loads(export.manifest.read_text())["manifest"]["audit_head"]
    assert records.verify_audit(manifests=[export.directory]).ok

    with _raw(records) as connection:
        connection.execute("DROP TRIGGER audit_log_no_delete")
        connection.execute("DELETE FROM audit_log WHERE id >= ?", (head["row"],))

    assert records.verify_audit().ok  # the chain alone cannot tell
    report = records.verify_audit(manifests=[export.directory])
    assert [p.row for p in report.problems] == [head["row"]]
    assert "cut short" in report.problems[0].what


def test_a_file_slipped_into_an_export_folder_is_named(exported_records, export):
    (export.directory / "sample-99-v1.pdf").write_bytes(b"%PDF-1.4 forged")

    result = exported_records.verify_export(export.directory)

    assert result.problems == (
        "sample-99-v1.pdf is in the folder but not in the manifest",
    )
    assert exported_records.verify_export(export.files[0]).ok
