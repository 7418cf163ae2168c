"""A bench with stored records for the records tests, built once and copied.

Capturing a sample takes seconds, so one module-scoped bench holds a captured
sample (open bench, before any account) and an account per role; each test gets
its own copy of the data directory, so tampering in one test cannot leak.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance import recipes
from appliance.bundle import load_bundle
from appliance.classifier import SeedClassifier
from appliance.records.accounts import Actor, Role
from appliance.records.service import Records
from appliance.rigs import open_rig
from appliance.samples import SampleInfo
from appliance.settings import Settings
from appliance.store import Database, ImageStore, sqlite_url
from drivers.scene import SampleSpec

MAIZE = recipes.get("maize")

#: Account name and PIN of each role on the shared bench.
PINS = {"eve": "eng-4321", "olga": "op-1234", "quinn": "qa-9876"}
ROLES = {"eve": Role.ENGINEER, "olga": Role.OPERATOR, "quinn": Role.QA_LEAD}


def settings_for(root: Path) -> Settings:
    return Settings(data_dir=root, database_url=sqlite_url(root / "seedqa.db"))


def open_records(root: Path) -> Records:
    root.mkdir(parents=True, exist_ok=True)
    settings = settings_for(root)
    return Records(
        Database.open(settings.database_url), ImageStore(settings.images_dir), settings
    )


def capture(
    records: Records,
    actor: Actor,
    classifier: SeedClassifier,
    *,
    code: str,
    lot: str = "LOT-1",
    seed: int = 5,
) -> int:
    handle = open_rig("simulated", seed=seed, spec=SampleSpec(n_kernels=40))
    try:
        info = SampleInfo.create(lot=lot, code=code, recipe="maize", operator="Demo")
        stored = records.capture(
            actor,
            handle,
            info,
            calibration=records.calibration_for_capture(actor, handle),
            classifier=classifier,
            recipe=MAIZE,
        )
    finally:
        handle.close()
    return stored.id


@dataclass(frozen=True)
class Bench:
    """The shared bench: its data directory and the captured samples' ids.

    `sample_id` was captured on the open bench by "Demo"; `second_id` (same lot,
    captured later) by the operator account "olga".
    """

    root: Path
    sample_id: int
    second_id: int
    bundle: Path

    def copy(self, target: Path) -> Path:
        shutil.copytree(self.root, target)
        return target


def build_bench(root: Path, bundle: Path) -> Iterator[Bench]:
    """Capture one sample on an open bench, then add one account per role."""
    (root / "models").mkdir(parents=True)
    shutil.copy(bundle, root / "models" / "maize-sim.safetensors")
    classifier = SeedClassifier(load_bundle(bundle), numeric="fp32")
    records = open_records(root)
    try:
        sample_id = capture(
            records, records.open_bench("Demo"), classifier, code="S-0001"
        )
        bench = records.open_bench()
        records.add_user(bench, "eve", Role.ENGINEER, PINS["eve"])
        eve = records.sign_in("eve", PINS["eve"])
        for name in ("olga", "quinn"):
            records.add_user(eve, name, ROLES[name], PINS[name])
        olga = records.sign_in("olga", PINS["olga"])
        second_id = capture(records, olga, classifier, code="S-0002", seed=7)
    finally:
        records.db.close()
    yield Bench(root, sample_id, second_id, bundle)
