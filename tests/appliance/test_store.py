"""The storage layer on a real SQLite file: pragmas, migrations, atomic saves."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.store import (
    CalibrationNotFound,
    CaptureInput,
    Database,
    ImageStore,
    RigMismatch,
    SampleNotFound,
    alembic_config,
    create_engine_for,
    get_sample,
    latest_calibration,
    list_samples,
    save_calibration,
    save_sample,
    sqlite_url,
    upgrade,
)
from appliance.store.models import Base, Capture, Rig, Sample, Seed

CAPTURED_AT = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "seedqa.db")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.open(db_url)
    yield database
    database.close()


@pytest.fixture
def image_store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def _rgb(seed: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def _captures() -> list[CaptureInput]:
    return [
        CaptureInput("top", "TOP-001", _rgb(1), CAPTURED_AT, 1200.0),
        CaptureInput(
            "bottom", "BOT-002", _rgb(2), CAPTURED_AT + timedelta(milliseconds=5), 900.5
        ),
    ]


def _seeds() -> list[dict[str, Any]]:
    return [
        {
            "index": 0,
            "top_label": 1,
            "bottom_label": 3,
            "top_bbox": (4, 5, 10, 12),
            "bottom_bbox": [6, 5, 11, 12],
            "area_mm2": np.float64(12.5),
            "fused_class": "pure",
            "flags": [],
            "data": {"top": {"pure": 0.9, "weed": 0.1}, "bottom": {"pure": 0.8}},
        },
        {
            "index": np.int64(1),
            "top_label": np.int32(2),
            "bottom_label": None,
            "top_bbox": [20, 22, 8, 9],
            "fused_class": "inert",
            "flags": ["unmatched", "touches_border"],
        },
    ]


def _save(
    db: Database,
    image_store: ImageStore,
    *,
    seeds: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> int:
    arguments: dict[str, Any] = {
        "rig_name": "bench-1",
        "rig_kind": "simulated",
        "top_serial": "TOP-001",
        "bottom_serial": "BOT-002",
        "calibration_id": None,
        "lot": "LOT-7",
        "code": "S-0001",
        "recipe": "wheat",
        "operator": "ana",
        "captured_at": CAPTURED_AT,
        "captures": _captures(),
        "seeds": _seeds() if seeds is None else seeds,
        "summary": {"purity_pct": 50.0, "counts": {"pure": 1, "inert": 1}},
    }
    arguments.update(overrides)
    return save_sample(db, image_store, **arguments)


def _row_counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            or 0
            for model in (Rig, Sample, Capture, Seed)
        }


def _calibration_record(residual_px: float) -> dict[str, Any]:
    return {
        "residual_px": residual_px,
        "mm_per_px_top": 0.05,
        "mm_per_px_bottom": np.float32(0.051),
        "homography": np.eye(3),
    }


def test_sqlite_connections_use_wal_and_foreign_keys(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine_for(db_url)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 5000
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(db_url: str, db: Database) -> None:
    engine = create_engine_for(db_url)
    try:
        with pytest.raises(IntegrityError), Session(engine) as session:
            session.add(
                Sample(
                    rig_id=999,
                    lot="L",
                    code="C",
                    recipe="wheat",
                    operator="ana",
                    captured_at=CAPTURED_AT,
                    status="complete",
                )
            )
            session.commit()
    finally:
        engine.dispose()

    assert _row_counts(db)["samples"] == 0


def test_migration_matches_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        tables = set(connection.dialect.get_table_names(connection))

    assert diff == []
    assert {"rigs", "calibrations", "samples", "captures", "seeds"} <= tables


def test_upgrade_twice_is_harmless(
    db_url: str, db: Database, image_store: ImageStore
) -> None:
    sample_id = _save(db, image_store)

    upgrade(db_url)

    assert get_sample(db, sample_id).code == "S-0001"


def test_threads_may_open_one_database_at_once(db_url: str) -> None:
    import threading

    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def open_it() -> None:
        start.wait()
        try:
            Database.open(db_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []


def test_saved_sample_round_trips(db: Database, image_store: ImageStore) -> None:
    sample_id = _save(db, image_store)

    sample = get_sample(db, sample_id)

    assert (sample.rig_name, sample.rig_kind) == ("bench-1", "simulated")
    assert (sample.lot, sample.code, sample.recipe, sample.operator) == (
        "LOT-7",
        "S-0001",
        "wheat",
        "ana",
    )
    assert sample.captured_at == CAPTURED_AT
    assert sample.captured_at.tzinfo is not None
    assert sample.summary == {"purity_pct": 50.0, "counts": {"pure": 1, "inert": 1}}

    assert [c.view for c in sample.captures] == ["top", "bottom"]
    bottom = sample.capture("bottom")
    assert (bottom.camera_serial, bottom.width, bottom.height) == ("BOT-002", 64, 48)
    assert bottom.exposure_us == 900.5
    assert bottom.timestamp == CAPTURED_AT + timedelta(milliseconds=5)
    for capture, original in zip(sample.captures, _captures(), strict=True):
        assert np.array_equal(
            image_store.read_image(capture.image_sha256), original.image
        )

    first, second = sample.seeds
    assert first.index == 0 and second.index == 1
    assert first.top_bbox == (4, 5, 10, 12)
    assert first.area_mm2 == 12.5
    assert first.data == {"top": {"pure": 0.9, "weed": 0.1}, "bottom": {"pure": 0.8}}
    assert (second.top_label, second.bottom_label) == (2, None)
    assert second.bottom_bbox is None and second.area_mm2 is None
    assert second.flags == ("unmatched", "touches_border")
    assert second.data is None


def test_captured_at_is_stored_in_utc(db: Database, image_store: ImageStore) -> None:
    local = CAPTURED_AT.astimezone(timezone(timedelta(hours=2)))

    sample = get_sample(db, _save(db, image_store, captured_at=local))

    assert sample.captured_at == CAPTURED_AT
    assert sample.captured_at.utcoffset() == timedelta(0)


def test_naive_datetime_is_refused_before_anything_is_written(
    db: Database, image_store: ImageStore
) -> None:
    with pytest.raises(ValueError, match="naive"):
        _save(db, image_store, captured_at=datetime(2024, 5, 17, 9, 30))

    assert not image_store.root.exists()
    assert _row_counts(db)["samples"] == 0


def test_images_are_on_disk_and_intact_before_commit(
    db: Database, image_store: ImageStore
) -> None:
    seen_at_commit: list[tuple[str, bool]] = []

    def check_images(session: Session) -> None:
        for row in list(session.new) + list(session.identity_map.values()):
            if isinstance(row, Capture):
                sha = row.image_sha256
                path = image_store.path(sha)
                on_disk = path.is_file()
                intact = (
                    on_disk and hashlib.sha256(path.read_bytes()).hexdigest() == sha
                )
                seen_at_commit.append((sha, intact))

    event.listen(Session, "before_commit", check_images)
    try:
        _save(db, image_store)
    finally:
        event.remove(Session, "before_commit", check_images)

    assert len(seen_at_commit) == 2
    assert all(intact for _, intact in seen_at_commit)
    assert len({sha for sha, _ in seen_at_commit}) == 2


def test_failure_inside_transaction_leaves_no_rows(
    db: Database, image_store: ImageStore
) -> None:
    duplicate = [{"index": 0}, {"index": 1}, {"index": 1}]

    with pytest.raises(IntegrityError):
        _save(db, image_store, seeds=duplicate)

    assert _row_counts(db) == {"rigs": 0, "samples": 0, "captures": 0, "seeds": 0}
    assert list_samples(db) == []


def test_unknown_calibration_rolls_back_the_new_rig(
    db: Database, image_store: ImageStore
) -> None:
    with pytest.raises(CalibrationNotFound, match="42"):
        _save(db, image_store, calibration_id=42)

    assert _row_counts(db)["rigs"] == 0
    assert _row_counts(db)["samples"] == 0


def test_calibration_of_another_rig_is_refused(
    db: Database, image_store: ImageStore
) -> None:
    other_id, _ = save_calibration(
        db, rig_name="bench-2", rig_kind="simulated", record=_calibration_record(0.3)
    )

    with pytest.raises(RigMismatch, match="bench-2"):
        _save(db, image_store, calibration_id=other_id)

    assert _row_counts(db)["samples"] == 0


def test_rig_kind_must_match_the_stored_rig(
    db: Database, image_store: ImageStore
) -> None:
    _save(db, image_store)

    with pytest.raises(RigMismatch, match="simulated"):
        _save(db, image_store, rig_kind="genicam")

    assert _row_counts(db)["samples"] == 1


def test_recaptured_code_is_a_new_sample(db: Database, image_store: ImageStore) -> None:
    first = _save(db, image_store)
    second = _save(db, image_store, captured_at=CAPTURED_AT + timedelta(minutes=3))
    _save(db, image_store, lot="LOT-8", code="S-0002")

    listing = list_samples(db, lot="LOT-7")

    assert [s.id for s in listing] == [second, first]
    assert [s.seed_count for s in listing] == [2, 2]
    assert _row_counts(db)["rigs"] == 1
    assert len(list_samples(db)) == 3


def test_missing_sample_names_its_id(db: Database) -> None:
    with pytest.raises(SampleNotFound, match="12345") as raised:
        get_sample(db, 12345)

    assert raised.value.sample_id == 12345
    assert isinstance(raised.value, LookupError)


def test_deleting_a_sample_cascades_to_captures_and_seeds(
    db: Database, image_store: ImageStore
) -> None:
    sample_id = _save(db, image_store)

    with db.session() as session:
        session.execute(Sample.__table__.delete().where(Sample.id == sample_id))

    counts = _row_counts(db)
    assert (counts["samples"], counts["captures"], counts["seeds"]) == (0, 0, 0)


def test_put_is_content_addressed_and_idempotent(image_store: ImageStore) -> None:
    data = b"\x89PNG not really, but bytes all the same"

    sha = image_store.put(data)
    path = image_store.path(sha)
    first_stat = path.stat()
    again = image_store.put(data)

    assert sha == again == hashlib.sha256(data).hexdigest()
    assert path == image_store.root / sha[:2] / sha[2:4] / f"{sha}.png"
    assert path.stat().st_ino == first_stat.st_ino
    assert path.stat().st_mtime_ns == first_stat.st_mtime_ns
    assert image_store.read(sha) == data
    assert image_store.verify(sha)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_corrupted_image_fails_verification_and_put_repairs_it(
    image_store: ImageStore,
) -> None:
    data = b"some image bytes"
    sha = image_store.put(data)
    image_store.path(sha).write_bytes(b"bit rot")

    assert not image_store.verify(sha)

    image_store.put(data)

    assert image_store.verify(sha)


@pytest.mark.parametrize(
    "sha",
    [
        "../" * 10 + "etc/passwd",
        "A" * 64,
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "a" * 62 + "/x",
        "",
    ],
)
def test_invalid_sha_is_refused(image_store: ImageStore, sha: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        image_store.path(sha)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        image_store.read(sha)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        image_store.verify(sha)


def test_put_image_is_lossless_rgb_and_uint16(image_store: ImageStore) -> None:
    rgb = _rgb(7)
    labels = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 20

    rgb_back = image_store.read_image(image_store.put_image(rgb))
    labels_back = image_store.read_image(image_store.put_image(labels))

    assert rgb_back.dtype == np.uint8 and np.array_equal(rgb_back, rgb)
    assert labels_back.dtype == np.uint16 and np.array_equal(labels_back, labels)


def test_put_image_refuses_float_arrays(image_store: ImageStore) -> None:
    with pytest.raises(ValueError, match="float64"):
        image_store.put_image(np.zeros((8, 8, 3)))


def test_calibration_versions_increment_per_rig(db: Database) -> None:
    assert latest_calibration(db, "bench-1") is None

    assert (
        save_calibration(
            db,
            rig_name="bench-1",
            rig_kind="simulated",
            record=_calibration_record(0.4),
        )[1]
        == 1
    )
    assert (
        save_calibration(
            db, rig_name="bench-2", rig_kind="genicam", record=_calibration_record(0.9)
        )[1]
        == 1
    )
    second_id, second_version = save_calibration(
        db, rig_name="bench-1", rig_kind="simulated", record=_calibration_record(0.2)
    )

    latest = latest_calibration(db, "bench-1")

    assert second_version == 2
    assert latest is not None
    assert (latest.id, latest.version, latest.residual_px) == (second_id, 2, 0.2)
    assert latest.mm_per_px_bottom == pytest.approx(0.051)
    assert latest.record["homography"] == np.eye(3).tolist()
    assert len(latest.record_sha256) == 64


def test_calibration_record_without_its_figures_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="mm_per_px_top"):
        save_calibration(
            db, rig_name="bench-1", rig_kind="simulated", record={"residual_px": 0.1}
        )

    assert _row_counts(db)["rigs"] == 0


def test_migration_renders_for_postgresql() -> None:
    config = alembic_config("postgresql://qa:p%40ss@lab-db/seedqa")
    config.output_buffer = io.StringIO()

    command.upgrade(config, "head", sql=True)
    sql = config.output_buffer.getvalue()

    assert "created_at TIMESTAMP WITH TIME ZONE NOT NULL" in sql
    assert "REFERENCES samples (id) ON DELETE CASCADE" in sql
    assert "CONSTRAINT uq_captures_sample_id_view UNIQUE (sample_id, view)" in sql
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in sql


#: Run by each child of the SIGKILL test: it reports "ready" just before the upgrade
#: and "done" once the upgrade has returned, then waits for its stdin to close.
UPGRADE_CHILD = """
import sys
from appliance.store import upgrade

print("ready", flush=True)
upgrade(sys.argv[1])
print("done", flush=True)
sys.stdin.read()
"""
#: Every table the models declare (the migrations must create all of them).
SCHEMA_TABLES = set(Base.metadata.tables)
MIGRATION_KILLS = 20
#: Kill delays are drawn from 0 to this many times the upgrade's own duration, so
#: most kills land before or inside the migration on fast and slow machines alike.
MIGRATION_KILL_SPREAD = 1.5


def _start_upgrade(path: Path) -> subprocess.Popen[bytes]:
    """Start a child that upgrades the SQLite file `path`; return once it is ready."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")))
    )
    stderr_path = path.with_suffix(".stderr")
    with stderr_path.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", UPGRADE_CHILD, sqlite_url(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )

    assert child.stdout is not None
    if child.stdout.readline() != b"ready\n":
        child.kill()
        child.wait(timeout=30)
        pytest.fail(f"upgrade child did not start:\n{stderr_path.read_text()}")
    return child


def _upgrade_duration_s(path: Path) -> float:
    """Time one child's upgrade of `path`, from "ready" to "done", in seconds."""
    child = _start_upgrade(path)
    assert child.stdout is not None

    started = time.monotonic()
    done = child.stdout.readline()
    duration_s = time.monotonic() - started
    child.communicate(timeout=30)

    assert done == b"done\n", path.with_suffix(".stderr").read_text()
    return duration_s


def _kill_during_upgrade(path: Path, delay_s: float) -> bool:
    """Upgrade `path` in a child, SIGKILL it after `delay_s`; return if it finished."""
    child = _start_upgrade(path)

    time.sleep(delay_s)
    child.send_signal(signal.SIGKILL)
    output, _ = child.communicate(timeout=30)

    assert child.returncode == -signal.SIGKILL, (
        f"upgrade child exited with {child.returncode}, not by SIGKILL:\n"
        f"{path.with_suffix('.stderr').read_text()}"
    )
    return b"done" in output


def _schema_state(path: Path) -> tuple[set[str], list[str]]:
    """Return the tables and the alembic_version rows of the SQLite file `path`."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        versions = []
        if "alembic_version" in tables:
            versions = [
                version
                for (version,) in connection.execute(
                    "SELECT version_num FROM alembic_version"
                )
            ]
    return tables, versions


def test_sigkill_during_first_migration_leaves_nothing_or_everything(
    tmp_path: Path,
) -> None:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    whole = SCHEMA_TABLES | {"alembic_version"}
    max_delay_s = MIGRATION_KILL_SPREAD * _upgrade_duration_s(tmp_path / "timed.db")
    rng = np.random.default_rng(20241203)

    finished = []
    for number in range(MIGRATION_KILLS):
        path = tmp_path / f"killed-{number:02d}.db"
        delay_s = float(rng.uniform(0.0, max_delay_s))

        finished.append(_kill_during_upgrade(path, delay_s))

        tables, versions = _schema_state(path)
        assert (tables, versions) in [(set(), []), (whole, [head])], (
            f"kill {number} after {delay_s * 1000:.0f} ms left tables {sorted(tables)}"
            f" and versions {versions}"
        )
        with Database.open(sqlite_url(path)) as db, db.engine.connect() as connection:
            reopened = set(connection.dialect.get_table_names(connection))
            version = connection.exec_driver_sql(
                "SELECT version_num FROM alembic_version"
            ).scalar_one()
        assert reopened >= SCHEMA_TABLES
        assert version == head

    # Some kills must land before the upgrade returned, or nothing was tested.
    assert not all(finished), finished
