"""`seedqa-models active`: choose seeds for labelling, list rounds, run the study."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

STRATEGY_CHOICES = ("batchbald", "bald", "entropy-kmeans", "random")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``active`` builder and its actions to `seedqa-models`."""
    active = sub.add_parser(
        "active",
        help="batch active learning: which seeds an expert should label next",
        description="Choose unlabelled seeds for an expert to label (BatchBALD by "
        "default), list labelling rounds, and run the simulated-expert study.",
    )
    verbs = active.add_subparsers(dest="verb", required=True, metavar="ACTION")

    p = verbs.add_parser(
        "select",
        help="choose a batch of unlabelled seeds and store it as a labelling round",
        description="Score the unlabelled seeds of POOL with Monte Carlo dropout "
        "draws of MODEL, choose BATCH of them, store their crops and scores as a "
        "new labelling round in the database, and print the round.",
    )
    p.add_argument(
        "--pool",
        required=True,
        help="'db' for the stored seeds without a label, or an image folder",
    )
    p.add_argument("--model", type=Path, required=True, help="classifier bundle")
    p.add_argument("--batch", type=int, required=True, help="seeds to choose")
    p.add_argument(
        "--strategy",
        choices=STRATEGY_CHOICES,
        default="batchbald",
        help="how to choose (batchbald)",
    )
    p.add_argument("--draws", type=int, default=20, help="dropout draws K (20)")
    p.add_argument(
        "--num-samples",
        type=int,
        default=1000,
        help="BatchBALD's sampled label configurations (1000)",
    )
    p.add_argument("--dropout", type=float, default=0.5, help="dropout rate (0.5)")
    p.add_argument(
        "--ready-crops",
        action="store_true",
        help="folder pool: images are single seeds already masked on black",
    )
    p.add_argument(
        "--crop-side", type=float, metavar="PX", help="ready crops: fixed side cut"
    )
    p.add_argument("--recipe", help="database pool: only samples of this recipe")
    p.add_argument(
        "--max-samples", type=int, help="database pool: at most this many samples"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of random choices (0)")
    p.add_argument("--json", action="store_true", help="print the round as JSON")
    p.set_defaults(run=cmd_select)

    p = verbs.add_parser("rounds", help="list the labelling rounds")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(run=cmd_rounds)

    p = verbs.add_parser(
        "experiment",
        help="simulated expert: accuracy against labels for each strategy",
        description="Run random, entropy+k-means and BatchBALD with the ground "
        "truth as the oracle; append one JSON line per round to OUT.",
    )
    p.add_argument("dataset", choices=["maize", "wheat"], help="which crops")
    p.add_argument("--out", type=Path, required=True, help="JSON-lines results file")
    p.add_argument(
        "--wheat-dir",
        type=Path,
        default=Path("../shared/data/wheat-grains"),
        help="the wheat-grains image folder (../shared/data/wheat-grains)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="(0 1 2)")
    from models.active.budget import Budget

    p.add_argument(
        "--backbone",
        type=Path,
        help="bundle whose frozen features the learner trains only its final layer "
        "on (another recipe's, say); default: the whole ResNet18 from scratch",
    )
    for field in dataclasses.fields(Budget):
        flag = field.name.replace("_", "-")
        p.add_argument(
            f"--{flag}", type=int, default=field.default, help=f"({field.default})"
        )
    p.set_defaults(run=cmd_experiment)

    p = verbs.add_parser(
        "report", help="table and plot of experiment results (JSON lines)"
    )
    p.add_argument("results", type=Path, nargs="+", help="files written by experiment")
    p.add_argument("--plot", type=Path, required=True, help="PNG to write")
    p.set_defaults(run=cmd_report)


def _progress(what: str):  # noqa: ANN202
    from models.cli import _progress_bar

    return _progress_bar(what)


def cmd_select(args: argparse.Namespace) -> int:
    """Choose a batch and store it as a labelling round."""
    from appliance.bundle import load_bundle
    from appliance.settings import Settings
    from appliance.store import Database, ImageStore, ItemInput, create_round
    from appliance.store.labelling import chosen_sources
    from models.active.mc_dropout import network_from_bundle
    from models.active.pool import database_pool, folder_pool

    if args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    bundle = load_bundle(args.model)
    info = bundle.info
    settings = Settings.load()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    images = ImageStore(settings.images_dir)
    margin = float(info.crop.get("margin", 1.15))
    with Database.open(settings.database_url) as db:
        if args.pool == "db":
            pool = database_pool(
                db,
                images,
                size=info.input_size,
                margin=margin,
                recipe=args.recipe,
                max_samples=args.max_samples,
                progress=_progress("cutting stored seeds"),
            )
        else:
            side = args.crop_side or info.crop.get("ready_side_px")
            pool = folder_pool(
                Path(args.pool),
                size=info.input_size,
                ready=args.ready_crops,
                side_px=float(side) if side else None,
                margin=margin,
                exclude=chosen_sources(db),
                progress=_progress("cutting crops"),
            )
        if len(pool) == 0:
            raise ValueError(f"pool {args.pool} has no unlabelled seeds left")
        net = network_from_bundle(bundle)
        chosen, log_probs, scores = choose(net, info, pool, args)
        mean = log_probs.exp().mean(1).numpy()
        items = [
            ItemInput(
                top_crop_sha256=images.put_image(pool.top[i]),
                bottom_crop_sha256=images.put_image(pool.bottom[i])
                if pool.has_bottom[i]
                else None,
                score=float(score),
                suggested_class=info.classes[int(mean[i].argmax())],
                probabilities=tuple(float(p) for p in mean[i]),
                seed_id=pool.seed_ids[i],
                source=pool.sources[i],
            )
            for i, score in zip(chosen, scores, strict=True)
        ]
        round_id = create_round(
            db,
            strategy=args.strategy,
            model_name=f"{info.name} v{info.version}",
            model_sha256=bundle.sha256,
            pool=pool.description,
            classes=info.classes,
            params={
                "batch": args.batch,
                "draws": args.draws,
                "num_samples": args.num_samples,
                "dropout": args.dropout,
                "seed": args.seed,
                "pool_size": len(pool),
            },
            items=items,
        )
    _print_selection(round_id, items, as_json=args.json)
    return 0


def choose(
    net: torch.nn.Module, info: Any, pool: Any, args: argparse.Namespace
) -> tuple[list[int], torch.Tensor, list[float]]:
    """Score the pool and choose; return indices, (N, K, C) log-probs, scores."""
    from models.active import (
        bald,
        batchbald,
        entropy_kmeans,
        random_batch,
    )
    from models.active.mc_dropout import predict_pool
    from models.active.pool import pool_log_probs

    top = predict_pool(
        net, info, pool.top, num_draws=args.draws, p=args.dropout, seed=args.seed
    )
    bottom = None
    if pool.has_bottom.any():
        bottom = predict_pool(
            net, info, pool.bottom, num_draws=args.draws, p=args.dropout, seed=args.seed
        )
    log_probs = pool_log_probs(
        top.log_probs, bottom.log_probs if bottom else None, pool.has_bottom
    )
    if args.strategy == "batchbald":
        bar = _progress("BatchBALD")
        selection = batchbald(log_probs, args.batch, args.num_samples, progress=bar)
    elif args.strategy == "bald":
        selection = bald(log_probs, args.batch)
    elif args.strategy == "entropy-kmeans":
        feats = top.features
        if bottom is not None:
            feats = np.concatenate([top.features, bottom.features], axis=1)
        plain = log_probs.exp().mean(1, keepdim=True).log()
        selection = entropy_kmeans(plain, feats, args.batch, seed=args.seed)
    else:
        selection = random_batch(len(pool), args.batch, seed=args.seed)
    return selection.indices, log_probs, selection.scores


def _print_selection(round_id: int, items: list[Any], *, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "round": round_id,
                    "items": [
                        {
                            "position": n,
                            "seed_id": item.seed_id,
                            "source": item.source,
                            "score": item.score,
                            "suggested_class": item.suggested_class,
                        }
                        for n, item in enumerate(items)
                    ],
                },
                indent=1,
            )
        )
        return
    print(f"labelling round {round_id}: {len(items)} seeds chosen")
    print(f"  {'#':>4} {'score':>8}  {'suggested':<20} seed")
    for n, item in enumerate(items):
        where = f"seed {item.seed_id}" if item.seed_id is not None else item.source
        print(f"  {n:>4} {item.score:8.3f}  {item.suggested_class:<20} {where}")
    print("label them in the annotation screen of the seedqa app")


def cmd_rounds(args: argparse.Namespace) -> int:
    """List the labelling rounds."""
    from appliance.settings import Settings
    from appliance.store import Database, list_rounds

    with Database.open(Settings.load().database_url) as db:
        rounds = list_rounds(db)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "created_at": r.created_at.isoformat(),
                        "strategy": r.strategy,
                        "status": r.status,
                        "labelled_by": r.labelled_by,
                        "seconds_spent": r.seconds_spent,
                        "validation_accuracy": r.validation_accuracy,
                        "model": r.model_name,
                    }
                    for r in rounds
                ],
                indent=1,
            )
        )
        return 0
    if not rounds:
        print("no labelling rounds yet; make one with `seedqa-models active select`")
    for r in rounds:
        acc = "-" if r.validation_accuracy is None else f"{r.validation_accuracy:.3f}"
        spent = "-" if r.seconds_spent is None else f"{r.seconds_spent:.0f} s"
        print(
            f"round {r.id:>4}  {r.created_at:%Y-%m-%d %H:%M}  {r.strategy:<14} "
            f"{r.status:<9} by {r.labelled_by or '-':<12} {spent:>7}  accuracy {acc}"
        )
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """Run the simulated-expert study."""
    from appliance.bundle import load_bundle
    from models.active.budget import Budget
    from models.active.experiment import load_dataset, run_experiment

    budget = Budget(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(Budget)}
    )
    backbone = load_bundle(args.backbone) if args.backbone else None
    size = backbone.info.input_size if backbone else budget.size
    data = load_dataset(args.dataset, size=size, wheat_dir=args.wheat_dir)
    run_experiment(
        args.dataset,
        data,
        args.out,
        seeds=tuple(args.seeds),
        budget=budget,
        backbone=backbone,
    )
    print(f"results appended to {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Print the study's table and write its plot."""
    from models.active.report import curves, markdown_table, plot_curves, read_results

    records = [r for path in args.results for r in read_results(path)]
    summary = curves(records)
    print(markdown_table(summary))
    print(f"plot: {plot_curves(summary, args.plot)}")
    return 0
