"""A writer killed with SIGKILL while saving never leaves a half or a lost sample.

`sample_writer.py` saves samples in a loop and reports each one once `save_sample`
has returned; this test kills it at random moments (during start-up, during the first
save, and at random offsets into its saving loop, so image writes, the transaction
and the report line are all hit), then checks the database and the image store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, text

from appliance.store import Database, ImageStore, get_sample, sqlite_url, upgrade
from appliance.store.models import Capture, Sample, Seed
from tests.appliance.sample_writer import planned_sample

WRITER = Path(__file__).with_name("sample_writer.py")
REPO_ROOT = Path(__file__).resolve().parents[2]

KILL_SEED = 20240517
#: Rounds of (kind, count); kinds are killed while importing and opening the
#: database ("startup"), around the first save ("first_save"), or at a random offset
#: after the writer has reported a sample ("saving").
KILL_PLAN = (("startup", 4), ("first_save", 6), ("saving", 26))
STARTUP_DELAY_S = (0.05, 0.6)
SAVING_OFFSET_S = (0.0, 0.3)
#: Each round's writer starts at index round * INDEX_STRIDE, so contents differ.
INDEX_STRIDE = 10_000
REPORT_TIMEOUT_S = 30.0
MIN_KILLS = 30
MIN_REPORTED = 20


@dataclass(frozen=True)
class Reported:
    """A report line: the writer had saved sample `index` as row `sample_id`."""

    index: int
    sample_id: int
    top_sha: str
    bottom_sha: str


@dataclass(frozen=True)
class Round:
    """One writer process, from spawn to SIGKILL."""

    number: int
    kind: str
    start_index: int
    report: Path
    stderr: Path


def _read_report(path: Path) -> list[Reported]:
    """Parse a report; a last line without its newline was torn by the kill."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="ascii").split("\n")
    complete = lines[:-1]
    entries = []
    for line in complete:
        index, sample_id, top_sha, bottom_sha = line.split(",")
        entries.append(Reported(int(index), int(sample_id), top_sha, bottom_sha))
    return entries


def _spawn(db_url: str, image_dir: Path, round_: Round) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(REPO_ROOT), env.get("PYTHONPATH")))
    )
    with round_.stderr.open("wb") as stderr:
        return subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                db_url,
                str(image_dir),
                str(round_.report),
                str(round_.start_index),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )


def _wait_for_first_report(process: subprocess.Popen[bytes], round_: Round) -> float:
    """Wait until the writer has reported a sample; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < REPORT_TIMEOUT_S:
        if round_.report.exists() and b"\n" in round_.report.read_bytes():
            return time.monotonic() - started
        if process.poll() is not None:
            pytest.fail(
                f"writer of round {round_.number} exited with {process.returncode} "
                f"before saving a sample:\n{round_.stderr.read_text()}"
            )
        time.sleep(0.005)
    process.kill()
    process.wait()
    pytest.fail(
        f"writer of round {round_.number} saved nothing in {REPORT_TIMEOUT_S} s"
    )


def _kill(process: subprocess.Popen[bytes], round_: Round) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    # Anything else means the writer died on its own before the kill.
    assert process.returncode == -signal.SIGKILL, (
        f"writer of round {round_.number} ({round_.kind}) exited with "
        f"{process.returncode}, not by SIGKILL:\n{round_.stderr.read_text()}"
    )


def _kill_rounds(db_url: str, image_dir: Path, work: Path) -> list[Round]:
    """Run and kill one writer per planned round; return the rounds."""
    rng = np.random.default_rng(KILL_SEED)
    kinds = [kind for kind, count in KILL_PLAN for _ in range(count)]
    rng.shuffle(kinds)
    # Until a saving round has measured it, guess the time to the first report.
    time_to_first_report = 1.5

    rounds = []
    for number, kind in enumerate(kinds):
        round_ = Round(
            number=number,
            kind=str(kind),
            start_index=number * INDEX_STRIDE,
            report=work / f"report-{number:02d}.txt",
            stderr=work / f"stderr-{number:02d}.txt",
        )
        process = _spawn(db_url, image_dir, round_)
        spawned = time.monotonic()

        if kind == "startup":
            time.sleep(rng.uniform(*STARTUP_DELAY_S))
        elif kind == "first_save":
            deadline = spawned + time_to_first_report * rng.uniform(0.85, 1.05)
            time.sleep(max(0.0, deadline - time.monotonic()))
        else:
            time_to_first_report = _wait_for_first_report(process, round_)
            time.sleep(rng.uniform(*SAVING_OFFSET_S))

        _kill(process, round_)
        rounds.append(round_)
    return rounds


@pytest.fixture
def crashed_store(tmp_path: Path) -> Iterator[tuple[Database, ImageStore, list[Round]]]:
    """A database and image store after a writer was SIGKILLed many times."""
    db_url = sqlite_url(tmp_path / "seedqa.db")
    image_dir = tmp_path / "images"
    work = tmp_path / "rounds"
    work.mkdir()
    # As on the appliance, the schema exists before the first sample is saved.
    upgrade(db_url)

    rounds = _kill_rounds(db_url, image_dir, work)

    db = Database.open(db_url)
    yield db, ImageStore(image_dir), rounds
    db.close()


def _assert_sample_whole(db: Database, images: ImageStore, sample_id: int) -> int:
    """Assert sample `sample_id` holds exactly what was planned; return its index."""
    record = get_sample(db, sample_id)
    assert record.summary is not None
    planned = planned_sample(record.summary["index"])

    assert record.code == planned.code
    assert record.summary == planned.summary
    assert [c.view for c in record.captures] == ["top", "bottom"]
    for capture, image, sha in zip(
        record.captures,
        (planned.top_image, planned.bottom_image),
        planned.image_shas(),
        strict=True,
    ):
        assert capture.image_sha256 == sha
        assert images.verify(sha), f"sample {sample_id}: image {sha} missing or torn"
        np.testing.assert_array_equal(images.read_image(sha), image)

    assert len(record.seeds) == planned.summary["n_seeds"]
    stored = {seed.index: seed for seed in record.seeds}
    for seed in planned.seeds:
        got = stored[seed["index"]]
        assert got.top_label == seed["top_label"]
        assert got.bottom_label == seed["bottom_label"]
        assert list(got.top_bbox or ()) == seed["top_bbox"]
        assert got.area_mm2 == seed["area_mm2"]
        assert got.fused_class == seed["fused_class"]
        assert list(got.flags) == seed["flags"]
        assert got.data == seed["data"]
    return planned.index


def test_sigkilled_writer_leaves_only_whole_and_reported_samples(
    crashed_store: tuple[Database, ImageStore, list[Round]],
) -> None:
    db, images, rounds = crashed_store

    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        orphans = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM captures WHERE sample_id NOT IN "
                "(SELECT id FROM samples)) + (SELECT count(*) FROM seeds WHERE "
                "sample_id NOT IN (SELECT id FROM samples))"
            )
        ).scalar_one()
    assert orphans == 0

    with db.session() as session:
        sample_ids = session.scalars(select(Sample.id).order_by(Sample.id)).all()
        capture_count = session.scalar(select(func.count()).select_from(Capture))
        seed_count = session.scalar(select(func.count()).select_from(Seed))
    stored_index = {
        sample_id: _assert_sample_whole(db, images, sample_id)
        for sample_id in sample_ids
    }
    assert capture_count == 2 * len(sample_ids)
    assert seed_count == sum(
        planned_sample(index).summary["n_seeds"] for index in stored_index.values()
    )

    reported = [entry for round_ in rounds for entry in _read_report(round_.report)]
    for entry in reported:
        assert stored_index.get(entry.sample_id) == entry.index, (
            f"reported sample {entry.index} (id {entry.sample_id}) is not stored"
        )
        record = get_sample(db, entry.sample_id)
        assert record.capture("top").image_sha256 == entry.top_sha
        assert record.capture("bottom").image_sha256 == entry.bottom_sha

    # Each writer saves a run of indexes; what it reported is a prefix of what is
    # stored, and at most one more sample (committed, then killed before reporting).
    indexes_by_round: dict[int, list[int]] = {}
    for index in stored_index.values():
        indexes_by_round.setdefault(index // INDEX_STRIDE, []).append(index)
    for round_ in rounds:
        stored = sorted(indexes_by_round.get(round_.number, []))
        reported_here = [entry.index for entry in _read_report(round_.report)]
        expected = list(range(round_.start_index, round_.start_index + len(stored)))
        assert stored == expected, f"round {round_.number} stored {stored}"
        assert len(stored) - len(reported_here) in (0, 1)
        assert reported_here == stored[: len(reported_here)]

    assert len(rounds) >= MIN_KILLS
    assert len(reported) >= MIN_REPORTED
