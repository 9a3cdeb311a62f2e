"""Pilots: how a chapter's setting and its number of verdict seeds were fixed before any
verdict seed ran.

A pilot trains on *pilot seeds*, seeds the verdict never uses, and decides two things by
rules written down before it runs:

1. **A setting, by a criterion blind to the effect.** Chapter 3 picks its task by the
   baseline alone: the mildest cut of the digit at the view's edge whose baseline
   consistency is at most ``MAX_BASELINE_CONSISTENCY`` (room for a gain) with clean accuracy
   at least ``MIN_BASELINE_ACCURACY`` (a network that learnt the task). AugShift's gain
   is not looked at.
2. **The number of verdict seeds.** If the pilot's effect were the truth, how many seeds
   would put the interval wholly on one side of the minimal effect? That is
   ``verdict.seeds_needed`` at the pilot's mean and spread, at least ``MIN_SEEDS``, at
   most what the profile can afford (``SEED_CAPS``). Seeds are never added after a verdict
   is seen.

The record goes to ``book/pilots/<chapter>-<profile>.json`` and is committed; the chapter
prints it, and a test checks that the profile's ``n_seeds`` is the record's. Run one with
``python -m posinfo.pilots augshift --profile default``.

Used by chapters 3 and 5 (their pilot records).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from .settings import Settings, chapter_settings
from .train import PLAN_ENV
from .verdict import Rule, seeds_needed, t_interval

PILOT_DIR = Path(__file__).resolve().parents[2] / "book" / "pilots"
# The previous edition's verdict seeds, seen, are this edition's pilot seeds.
PILOT_SEEDS = tuple(range(100, 106))
MIN_SEEDS = 3  # fewer leaves a t interval too wide to mean anything
# The most verdict seeds each profile's time budget buys (default: the 20-minute book; gpu:
# one GPU session of about 10 minutes' training per chapter, now that its verdict's arms
# train the paper's 20,833 steps: chapter 3's two arms are three runs' worth of canvases a
# seed, about 75 s at one graphed run's rate. Lowered from 16 on 2026-12-04, before any
# gpu pilot ran; raise it, again before the pilots, if the bench shows concurrent runs
# scale).
SEED_CAPS = {"smoke": 2, "default": 12, "gpu": 8, "paper": 3}
# Chapter 3's criterion on the baseline alone.
MAX_BASELINE_CONSISTENCY = 0.90
MIN_BASELINE_ACCURACY = 0.50
# Chapter 3's candidate tasks, mildest first: the share of the digit's side a view may cut
# at the edge, (max_shift - margin) / image_size, at the profile's max_shift (half the side:
# 0, 2, 4 and 6 px of the default's 12 px digits; 0, 5, 11 and 16 px of the gpu's 32 px).
CUT_SHARES = (0, 1 / 6, 1 / 3, 1 / 2)


def record_path(chapter: str, profile: str) -> Path:
    return PILOT_DIR / f"{chapter}-{profile}.json"


def load_record(chapter: str, profile: str) -> dict | None:
    """The committed pilot record of a chapter at a profile, or None if it has none."""
    path = record_path(chapter, profile)
    return json.loads(path.read_text()) if path.is_file() else None


def sample_size(values, min_effect: float, confidence: float, cap: int) -> dict:
    """The verdict seeds a pilot's per-seed statistic asks for (see the module docstring):
    {"n", "needed", "reason"} with the pilot's mean, sd and interval."""
    estimate = t_interval(values, confidence)
    needed = seeds_needed(estimate, Rule("pilot", min_effect))
    if needed is None:
        n, reason = cap, ("the pilot's mean sits so close to the minimal effect that no "
                          "affordable number of seeds decides it: the cap")
    elif needed > cap:
        n, reason = cap, f"{needed} seeds would decide it; the profile affords {cap}"
    else:
        n = max(needed, MIN_SEEDS)
        reason = (f"{needed} seeds would decide it" if needed >= MIN_SEEDS
                  else f"{needed} would decide it; at least {MIN_SEEDS}")
    return {"n": n, "needed": needed, "reason": reason, "mean": estimate.value,
            "sd": estimate.sd, "low": estimate.low, "high": estimate.high,
            "values": [float(v) for v in values]}


# ---- chapter 3 -------------------------------------------------------------------------------
def augshift_cuts(profile: str) -> list[int]:
    """Chapter 3's candidate cuts (pixels), mildest first, at the profile's image size."""
    size = chapter_settings("augshift", profile).image_size
    return list(dict.fromkeys(round(share * size) for share in CUT_SHARES))


def finished(record: dict) -> bool:
    """Whether a pilot has decided all it decides. Chapter 3's may stop between stages (see
    ``augshift_pilot``): it is finished once it has its sample size, or once every
    candidate failed the criterion."""
    if record.get("chapter") != "augshift":
        return True
    return record["sample_size"] is not None or (
        record["chosen"] is None and len(record["candidates"]) == len(
            augshift_cuts(record["profile"])))


def augshift_pilot(profile: str, seeds=PILOT_SEEDS, previous: dict | None = None,
                   stages: int | None = None) -> dict:
    """Chapter 3: the task by the baseline alone, then the seeds from the paired gain.

    It goes in *stages*: each candidate task's baselines at every pilot seed, mildest cut
    first, until one meets the criterion; then that task's AugShift runs. The runs of one
    stage do not depend on each other, so ``tools.prefetch`` trains them side by side; the
    next stage depends on this one's outcome. With ``stages``, the pilot stops after that
    many, and ``previous`` (the unfinished record) goes on from there, never repeating a
    stage: at the paper's length a GPU session holds a stage or two, not the pilot."""
    from .augshift import augshift_config, measure

    base = chapter_settings("augshift", profile)
    record = previous or {
        "chapter": "augshift", "profile": profile, "pilot_seeds": list(seeds),
        "criterion": f"mean baseline consistency <= {MAX_BASELINE_CONSISTENCY} and "
                     f"mean clean accuracy >= {MIN_BASELINE_ACCURACY}, mildest cut first",
        "candidates": [], "chosen": None, "sample_size": None}
    if (record["profile"], record["pilot_seeds"]) != (profile, list(seeds)):
        raise ValueError(f"previous must be this pilot's own unfinished record (profile "
                         f"{profile!r}, seeds {list(seeds)}), got profile "
                         f"{record['profile']!r}, seeds {record['pilot_seeds']}")
    cuts, run = augshift_cuts(profile), 0
    while not finished(record) and (stages is None or run < stages):
        run += 1
        if record["chosen"] is None:  # the next candidate's baselines
            cut = cuts[len(record["candidates"])]
            s = Settings(base, margin=base.max_shift - cut)
            runs = [measure("baseline", augshift_config(s, 0.0, False, seed), s.n_pairs)
                    for seed in seeds]
            row = {"cut": cut, "margin": s.margin, "max_shift": s.max_shift,
                   "consistency": [r.consistency for r in runs],
                   "clean_accuracy": [r.clean_accuracy for r in runs]}
            row["meets"] = bool(np.mean(row["consistency"]) <= MAX_BASELINE_CONSISTENCY
                                and np.mean(row["clean_accuracy"]) >= MIN_BASELINE_ACCURACY)
            record["candidates"].append(row)
            if row["meets"]:
                record["chosen"] = {"margin": s.margin, "max_shift": s.max_shift}
            continue
        _augshift_sample_size(record, base, seeds, profile)
    return record


def _augshift_sample_size(record: dict, base, seeds, profile: str) -> None:
    """The last stage: AugShift on the chosen task at every pilot seed, paired with its
    baselines; the sample size from the gains."""
    from .augshift import augshift_config, measure

    chosen = Settings(base, **record["chosen"])
    lam = chosen.augshift_lambda
    aug = {seed: measure("aug", augshift_config(chosen, lam, False, seed), chosen.n_pairs)
           for seed in seeds}
    base_consistency = dict(zip(seeds, record["candidates"][-1]["consistency"]))  # chosen
    gains = [aug[k].consistency - base_consistency[k] for k in seeds]  # paired, per seed
    record["sample_size"] = sample_size(gains, chosen.min_effect, chosen.confidence,
                                        SEED_CAPS[profile])
    record["sample_size"]["statistic"] = f"consistency gain at lambda = {lam:g}"


# ---- chapter 5 -------------------------------------------------------------------------------
def region_attack_pilot(profile: str, seeds=PILOT_SEEDS[:5]) -> dict:
    """Chapter 5: the seeds for the main verdict and for the symmetric control, each from
    the pilot's spread of the per-segmenter statistic (sides.side_statistic)."""
    from .segment import segmentation_budgets
    from .sides import side_drops, side_experiment, side_statistic

    s0 = chapter_settings("region_attack", profile)
    record = {"chapter": "region_attack", "profile": profile, "pilot_seeds": list(seeds),
              "ranking": s0.region_ranking}
    for role, mode in (("main", s0.scene_mode), ("control", s0.control_mode)):
        s = Settings(s0, scene_mode=mode)
        stats, drops = [], []
        for seed in seeds:
            setup = segmentation_budgets(s, seed, [s.epochs])[s.epochs]
            scores = side_experiment(setup, s.region_ranking, s.region_channels)["scores"]
            stats.append(side_statistic(scores))
            drops.append(side_drops(scores))
        record[role] = {"scene_mode": mode, "drops": drops,
                        "sample_size": sample_size(stats, s.min_effect, s.confidence,
                                                   SEED_CAPS[profile])}
    return record


PILOTS = {"augshift": augshift_pilot, "region_attack": region_attack_pilot}


def previous_verdicts(chapter: str) -> dict:
    """{part: [verdict lines]} of the chapter's committed notebooks (book/ and book/gpu/)
    as they stand when the pilot runs: the previous edition, which the chapter's "what
    changed" note quotes."""
    import nbformat

    from .run import chapter_sources

    stem = chapter_sources()[chapter].stem
    found = {}
    for part, folder in (("default", PILOT_DIR.parent), ("gpu", PILOT_DIR.parent / "gpu")):
        path = folder / f"{stem}.ipynb"
        if path.is_file():
            outputs = [o.get("text", "") for c in nbformat.read(path, as_version=4).cells
                       for o in c.get("outputs", []) if c.cell_type == "code"]
            found[part] = [line for text in outputs for line in text.splitlines()
                           if line.startswith("Claim ")]
    return found


def pilot_rows(record: dict) -> dict:
    """Chapter 3's candidates as table rows: the cut, the baseline's mean consistency and
    clean accuracy over the pilot seeds, and whether the criterion was met."""
    return {f"cut {c['cut']} px (margin {c['margin']}, max_shift {c['max_shift']})": {
        "baseline consistency": float(np.mean(c["consistency"])),
        "clean accuracy": float(np.mean(c["clean_accuracy"])),
        "meets the criterion": "yes" if c["meets"] else "no"} for c in record["candidates"]}


def sample_size_text(size: dict | None, min_effect: float) -> str:
    """One line: the pilot's statistic, its spread and the seeds it asks for (or, for a
    pilot not finished yet, that the profile's n_seeds is still set by hand)."""
    if size is None:
        return ("the pilot has not finished (or no candidate met its criterion): the "
                "profile's task and n_seeds are still set by hand")
    return (f"pilot mean {size['mean']:+.3f} (sd {size['sd']:.3f} per seed, "
            f"n = {len(size['values'])}), minimal effect {min_effect:+.3f}: {size['reason']}"
            f" -> n_seeds = {size['n']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapter", choices=sorted(PILOTS))
    parser.add_argument("--profile", default="default", choices=sorted(SEED_CAPS))
    parser.add_argument("--out", type=Path, default=PILOT_DIR,
                        help=f"folder the record is written to (default {PILOT_DIR}; on the "
                        "GPU machine, $OUT, so that it comes back)")
    parser.add_argument("--stages", type=int, metavar="N",
                        help="augshift only: stop after N stages (a candidate's baselines, "
                        "or the chosen task's AugShift runs); the committed unfinished "
                        f"record in {PILOT_DIR} is taken up where it stopped")
    args = parser.parse_args(argv)
    if args.stages is not None and (args.chapter != "augshift" or args.stages < 1):
        parser.error(f"--stages must be a whole number >= 1, for the augshift pilot only; "
                     f"got {args.stages} for {args.chapter}")
    if args.chapter == "augshift":
        previous = load_record("augshift", args.profile)
        previous = None if previous is None or finished(previous) else previous
        if previous is not None:
            print(f"taking up the unfinished pilot: {len(previous['candidates'])} "
                  "candidate(s) tried")
        record = augshift_pilot(args.profile, previous=previous, stages=args.stages)
    else:
        record = PILOTS[args.chapter](args.profile)
    if os.environ.get(PLAN_ENV):  # untrained models: the numbers are not a pilot's
        print(f"{PLAN_ENV} is set (a plan pass): no record written")
        return 0
    record["previous_edition"] = previous_verdicts(args.chapter)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / record_path(args.chapter, args.profile).name
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
