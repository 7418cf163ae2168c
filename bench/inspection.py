"""The main job measured: accuracy on simulated maize, and speed from capture to report.

Renders N simulated 200-kernel samples (not used in training), inspects each as the
appliance does, and prints:

- fused four-class accuracy over all kernels seen, and on kernels whose defect shows
  on one side only, beside each single view's accuracy and beside averaging the two
  views' probabilities instead of the appliance's fusion rule;
- the absolute error of purity by count and corrected purity against the sample's
  true purity, and how often their 95% intervals cover it;
- seconds from capture to stored report (correct, segment, pair, classify, fuse,
  purity, save), seed views per second, and the classifier's throughput against a
  plain fp32 eager ResNet18 at 224 px run in the same process, with the accuracy of
  the fast path against fp32 eager at the bundle's own crop size.

    .venv/bin/python bench/inspection.py --model BUNDLE [--samples 20]

The file is not called ``inspect.py``: a script's folder comes first on
``sys.path``, so that name would shadow the standard library's ``inspect``, which
torch imports.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from appliance import recipes
from appliance.bundle import Bundle, load_bundle
from appliance.classifier import SeedClassifier, build_network, network_weights
from appliance.crops import cut_crops
from appliance.fusion import DEFECT_THRESHOLD, fuse_views
from appliance.inspection import trusted_views
from appliance.rigs import open_rig
from appliance.samples import SampleInfo, capture_sample
from appliance.store import Database, ImageStore, sqlite_url
from calibration import calibrate
from drivers.scene import SampleSpec


def kernel_of(region, labels) -> int:  # noqa: ANN001
    r0, c0, r1, c1 = region.bbox
    hits = labels[r0:r1, c0:c1][region.mask]
    hits = hits[hits > 0]
    return int(np.bincount(hits).argmax()) - 1 if hits.size else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="maize bundle")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=9000, help="first sample seed")
    args = parser.parse_args()

    recipe = recipes.get("maize")
    bundle = load_bundle(args.model)
    fast = SeedClassifier(bundle)
    classes = bundle.info.classes

    handle = open_rig("simulated", seed=args.seed, spec=SampleSpec(n_kernels=200))
    handle.prepare("blank")
    blank = handle.rig.capture()
    handle.prepare("target")
    target = handle.rig.capture()
    calibration = calibrate(blank, target, rig="simulated")

    tmp = Path(tempfile.mkdtemp(prefix="seedqa-bench-"))
    db = Database.open(sqlite_url(tmp / "bench.db"))
    images = ImageStore(tmp / "images")
    info = SampleInfo.create(lot="BENCH", code="S", recipe="maize", operator="Bench")

    rows = {"fused": [], "mean": [], "top": [], "bottom": []}
    one_sided = {"fused": [], "mean": [], "top": [], "bottom": []}
    purity_err, corrected_err, covered, covered_corr, seconds, views = (
        [] for _ in range(6)
    )
    all_crops = []
    seen_probs: list[tuple[np.ndarray | None, np.ndarray | None, int]] = []
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    for _ in range(args.samples):
        # The simulated rig renders the sample while "capturing"; the job's clock
        # starts when the frames are in hand (the first analysis step).
        marks: list[float] = []
        stored = capture_sample(
            handle,
            (None, calibration),
            db,
            images,
            info,
            classifier=fast,
            recipe=recipe,
            progress=lambda step, f, marks=marks: marks.append(time.perf_counter()),
        )
        seconds.append(time.perf_counter() - marks[1])
        inspection = stored.inspection
        scene = handle.bench.scene
        truth = scene.truth
        n_views = 0
        for seed in inspection.seeds:
            view_hits = {}
            for view in ("top", "bottom"):
                region = getattr(seed.pair, view)
                if region is not None:
                    view_hits[view] = kernel_of(region, truth.labels[view])
                    n_views += 1
            ks = set(view_hits.values()) - {-1}
            if len(ks) != 1:
                continue
            kernel = truth.kernels[ks.pop()]
            true = classes.index(kernel.condition)
            verdicts = {"fused": seed.verdict.class_index}
            probs = [p for p in (seed.top_probs, seed.bottom_probs) if p is not None]
            verdicts["mean"] = int(np.argmax(np.mean(probs, axis=0)))
            for view in ("top", "bottom"):
                p = seed.probs(view)
                if p is not None:
                    verdicts[view] = int(np.argmax(p))
            sided = (
                kernel.condition != "pure" and kernel.shows_top != kernel.shows_bottom
            )
            found = {
                v: p
                for v, p in (("top", seed.top_probs), ("bottom", seed.bottom_probs))
                if p is not None
            }
            trusted = trusted_views(seed, found)
            seen_probs.append((trusted.get("top"), trusted.get("bottom"), true))
            confusion[true, seed.verdict.class_index] += 1
            for name, k in verdicts.items():
                rows[name].append(k == true)
                if (
                    sided
                    and seed.top_probs is not None
                    and seed.bottom_probs is not None
                ):
                    one_sided[name].append(k == true)
        views.append(n_views)
        in_view = [k for k in truth.kernels if k.in_top or k.in_bottom]
        true_purity = 100 * np.mean([k.condition == "pure" for k in in_view])
        summary = stored.report["summary"]
        by_count, corr = summary["purity_by_count"], summary["purity_corrected"]
        purity_err.append(abs(by_count["value_pct"] - true_purity))
        corrected_err.append(abs(corr["value_pct"] - true_purity))
        covered.append(
            by_count["ci95_pct"][0] <= true_purity <= by_count["ci95_pct"][1]
        )
        covered_corr.append(corr["ci95_pct"][0] <= true_purity <= corr["ci95_pct"][1])
        view = inspection.views["top"]
        regions = [s.pair.top for s in inspection.seeds if s.pair.top is not None]
        all_crops.append(
            cut_crops(view.corrected, regions, size=bundle.info.input_size)
        )

    def pct(values: list[bool]) -> str:
        return f"{100 * np.mean(values):5.1f}% (n={len(values)})" if values else "-"

    print(
        f"{args.samples} simulated samples of 200 kernels, model {bundle.info.name} "
        f"v{bundle.info.version} ({fast.numeric}, {bundle.info.input_size} px)"
    )
    print("four-class accuracy      all kernels         defect on one side only")
    for name in ("fused", "mean", "top", "bottom"):
        label = {
            "fused": "fused (appliance rule)",
            "mean": "mean of both views",
            "top": "top view alone",
            "bottom": "bottom view alone",
        }[name]
        print(f"  {label:<24} {pct(rows[name]):<20} {pct(one_sided[name])}")
    print(
        "  fused confusion (rows: truth): "
        + "; ".join(
            f"{c} {row.tolist()}" for c, row in zip(classes, confusion, strict=True)
        )
    )
    pure_mask = bundle.info.pure_mask
    sweep = []
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7):
        hits = [
            fuse_views(t, b, pure_mask, threshold=threshold).class_index == true
            for t, b, true in seen_probs
        ]
        sweep.append(f"{threshold:.1f}: {100 * np.mean(hits):.2f}%")
    print(
        f"  fusion threshold sweep (the appliance uses {DEFECT_THRESHOLD}): "
        + ", ".join(sweep)
    )
    print(
        f"purity by count: mean abs error {np.mean(purity_err):.2f} points, 95% CI "
        f"covers the truth in {sum(covered)}/{len(covered)} samples"
    )
    print(
        f"corrected purity: mean abs error {np.mean(corrected_err):.2f} points, 95% CI "
        f"covers the truth in {sum(covered_corr)}/{len(covered_corr)} samples"
    )
    print(
        f"capture to stored report: median {np.median(seconds):.2f} s "
        f"(max {np.max(seconds):.2f} s), {np.median(views):.0f} seed views per sample"
    )

    crops = np.concatenate(all_crops)[:400]
    speed = throughput(bundle, fast, crops)
    print(
        f"classifier: {speed['fast']:.0f} views/s ({fast.numeric}, channels-last, "
        f"{bundle.info.input_size} px) vs {speed['baseline']:.0f} views/s for fp32 "
        f"eager at 224 px: {speed['fast'] / speed['baseline']:.1f}x"
    )
    print(
        f"agreement of the fast path with fp32 eager at {bundle.info.input_size} px: "
        f"{100 * speed['agreement']:.2f}% of {len(crops)} views; accuracy "
        f"{100 * np.mean(rows['fused']):.1f}% fused (fast path)"
    )
    handle.close()
    db.close()


def throughput(
    bundle: Bundle, fast: SeedClassifier, crops: np.ndarray
) -> dict[str, float]:
    """Views per second of the fast path and of plain fp32 eager at 224 px."""
    import torch.nn.functional as F  # noqa: N812

    from appliance.classifier import to_tensor

    plain = build_network(bundle.info)
    plain.load_state_dict(network_weights(bundle))
    plain.eval()

    start = time.perf_counter()
    fast_probs = fast.predict(crops)
    fast_rate = len(crops) / (time.perf_counter() - start)

    x = to_tensor(crops, bundle.info).contiguous()
    with torch.no_grad():
        eager = torch.softmax(plain(x), 1).numpy()
        big = F.interpolate(x[:64], size=224, mode="bilinear", align_corners=False)
        start = time.perf_counter()
        for i in range(0, len(big), 32):
            plain(big[i : i + 32])
        base_rate = len(big) / (time.perf_counter() - start)
    agreement = float(np.mean(fast_probs.argmax(1) == eager.argmax(1)))
    return {"fast": fast_rate, "baseline": base_rate, "agreement": agreement}


if __name__ == "__main__":
    main()
