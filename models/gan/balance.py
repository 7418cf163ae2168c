"""A balanced training folder: real crops plus generated seeds of the rare classes.

The folder is in the classifier's ImageFolder layout, ``OUT/<class>/*.png``, so
``seedqa-models classifier train --data OUT --ready-crops`` reads it. Generated
images are named ``gan-<seed>-<n>.png`` (real ones ``real-<n>.png``), and
``OUT/manifest.json`` lists every file with its class and whether it is real or
generated, with the generator file's SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance.files import write_atomic
from appliance.imageio import write_png
from models.classifier.data import CropSet, DatasetError
from models.gan.generator_file import GeneratorInfo
from models.gan.network import Generator
from models.gan.quality import fit_to
from models.gan.sampling import sample_class

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
GENERATED_PREFIX = "gan-"


def top_up_counts(
    counts: dict[str, int], *, target: int | None, classes: Sequence[str] | None
) -> dict[str, int]:
    """Return how many images each class needs to reach `target` (default: the largest).

    Only `classes` are topped up when given; the others get none.
    """
    goal = target if target is not None else max(counts.values())
    chosen = list(classes) if classes is not None else list(counts)
    unknown = [c for c in chosen if c not in counts]
    if unknown:
        raise DatasetError(
            f"classes {unknown} are not in the data (its classes: {list(counts)})"
        )
    return {c: max(0, goal - counts[c]) if c in chosen else 0 for c in counts}


def write_balanced_folder(
    data: CropSet,
    generator: Generator,
    info: GeneratorInfo,
    out: Path,
    *,
    generator_path: Path,
    seed: int = 0,
    target: int | None = None,
    classes: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write `data`'s crops and generated top-ups to `out`; return the manifest.

    Parameters
    ----------
    data : CropSet
        The real crops, at any size; generated images are resized to it.
    target : int, optional
        Images per class to reach; the largest class's count by default.
    classes : sequence of str, optional
        Classes to top up; every class below `target` by default.

    Raises
    ------
    DatasetError
        If `out` exists and is not empty, or a class to top up is not one the
        generator was trained on.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(
            f"{out} already exists and is not empty; choose a new folder"
        )
    need = top_up_counts(data.counts(), target=target, classes=classes)
    missing = [c for c, n in need.items() if n and c not in info.classes]
    if missing:
        raise DatasetError(
            f"the generator was not trained on classes {missing} (its classes: "
            f"{list(info.classes)}); train it on this data's classes"
        )

    files: list[dict[str, Any]] = []
    size = int(data.crops.shape[1])
    total, done = len(data) + sum(need.values()), 0
    for i, (crop, label) in enumerate(zip(data.crops, data.labels, strict=True)):
        name = data.classes[int(label)]
        rel = f"{name}/real-{i:06d}.png"
        write_png(out / rel, crop)
        files.append({"file": rel, "class": name, "source": "real", "index": i})
        done += 1
        if progress and done % 200 == 0:
            progress(done, total)
    for name, n in need.items():
        if n == 0:
            continue
        images = fit_to(
            sample_class(generator, info.classes.index(name), n, seed=seed), size
        )
        for j, image in enumerate(images):
            rel = f"{name}/{GENERATED_PREFIX}{seed}-{j:06d}.png"
            write_png(out / rel, image)
            files.append({"file": rel, "class": name, "source": "generated"})
            done += 1
            if progress and done % 200 == 0:
                progress(done, total)
    if progress:
        progress(total, total)

    manifest = {
        "generator": str(generator_path),
        "generator_sha256": hashlib.sha256(
            Path(generator_path).read_bytes()
        ).hexdigest(),
        "seed": seed,
        "data": data.source,
        "counts": {
            c: {"real": data.counts()[c], "generated": need[c]} for c in data.classes
        },
        "files": files,
    }
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=1).encode())
    log.info(
        "balanced folder %s: %d real and %d generated images",
        out,
        len(data),
        sum(need.values()),
    )
    return manifest
