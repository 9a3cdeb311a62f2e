"""Pilots: how a chapter's setting and its number of verdict seeds were fixed before any
verdict seed ran.

A pilot trains on *pilot seeds*, seeds the verdict never uses, and decides two things by
rules written down before it runs:

1. **A setting, by a criterion blind to the effect.** Chapter 3 picks its task by the
   baseline alone: the first candidate, in a fixed order, whose baseline whole-digit
   consistency is at most ``MAX_BASELINE_CONSISTENCY`` (room for a gain) with accuracy on
   the shifted views at least ``MIN_BASELINE_ACCURACY`` (a network that learnt the task).
   AugShift's gain is not looked at.
2. **The number of verdict seeds, by power** (``power.sample_size``): the fewest seeds,
   at least ``power.MIN_SEEDS``, whose verdict is *decided* with probability at least
   ``power.POWER`` (0.8) if the pilot's mean and sd per seed were the truth, with the
   outcome it expects. Where the profile cannot afford that many (``SEED_CAPS``), it takes
   the cap and says what chance of a decision the cap buys: the chapter then says, before
   the verdict, that it is likely inconclusive. A pilot runs at least
   ``power.MIN_PILOT_SEEDS`` seeds, so that its sd is a measurement rather than a guess.
   Seeds are never added after a verdict is seen.

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

from .power import POWER, sample_size
from .settings import (FIRST_VERDICT_SEED, SECOND_EDITION_SEED, Settings,
                       chapter_settings)
from .train import PLAN_ENV

PILOT_DIR = Path(__file__).resolve().parents[2] / "book" / "pilots"
# A redesigned chapter's pilot seeds are its previous edition's verdict seeds, seen.
# Chapter 3's third edition: ten of its second edition's twelve verdict seeds, seen.
AUGSHIFT_PILOT_SEEDS = tuple(range(SECOND_EDITION_SEED, SECOND_EDITION_SEED + 10))
# The most verdict seeds each profile's time budget buys (default: the 20-minute book; gpu:
# one GPU session of about 10 minutes' training per chapter, now that its verdict's arms
# train the paper's 20,833 steps: chapter 3's two arms are three runs' worth of canvases a
# seed, about 75 s at one graphed run's rate. Lowered from 16 on 2026-12-04, before any
# gpu pilot ran; raise it, again before the pilots, if the bench shows concurrent runs
# scale).
SEED_CAPS = {"smoke": 2, "default": 12, "gpu": 8, "paper": 3}
# Chapter 3's criterion on the baseline alone (third edition, written before its pilot
# ran): room for a gain of several times the minimal effect (0.01) on whole-digit pairs,
# and a network that reads digits where they are shown (accuracy on the shifted views).
MAX_BASELINE_CONSISTENCY = 0.95
MIN_BASELINE_ACCURACY = 0.80


def record_path(chapter: str, profile: str) -> Path:
    return PILOT_DIR / f"{chapter}-{profile}.json"


def load_record(chapter: str, profile: str) -> dict | None:
    """The committed pilot record of a chapter at a profile, or None if it has none."""
    path = record_path(chapter, profile)
    return json.loads(path.read_text()) if path.is_file() else None


# ---- chapter 3 -------------------------------------------------------------------------------
def augshift_candidates(profile: str) -> list[dict]:
    """Chapter 3's candidate tasks at a profile, in the fixed order the pilot tries them.

    Each keeps the whole digit in every view (max_shift = margin) on the profile's canvas
    (image_size + 2 * margin) and leaves room below the ceiling by what the network must
    ignore: a blank canvas (the paper's), per-pixel noise, a real texture, then a texture
    with the digit at three quarters of its size (more to ignore, less to read)."""
    base = chapter_settings("augshift", profile)
    canvas = base.image_size + 2 * base.margin
    small = base.image_size * 3 // 4
    small -= (canvas - small) % 2  # an even margin each side
    tasks = [("zeros", base.image_size), ("noise", base.image_size),
             ("texture", base.image_size), ("texture", small)]
    return [{"background": background, "image_size": size, "margin": (canvas - size) // 2,
             "max_shift": (canvas - size) // 2} for background, size in tasks]


def task_name(task: dict) -> str:
    return (f"{task['background']} background, {task['image_size']} px digit, "
            f"shifts up to {task['max_shift']} px")


def finished(record: dict) -> bool:
    """Whether a pilot has decided all it decides. Chapter 3's may stop between stages (see
    ``augshift_pilot``): it is finished once it has its sample size, or once every
    candidate failed the criterion."""
    if record.get("chapter") != "augshift":
        return True
    return record["sample_size"] is not None or (
        record["chosen"] is None and len(record["candidates"]) == len(
            augshift_candidates(record["profile"])))


def augshift_pilot(profile: str, seeds=AUGSHIFT_PILOT_SEEDS, previous: dict | None = None,
                   stages: int | None = None) -> dict:
    """Chapter 3: the task by the baseline alone, then the seeds from the paired gain.

    It goes in *stages*: each candidate task's baselines at every pilot seed, in the fixed
    order of ``augshift_candidates``, until one meets the criterion (mean whole-digit
    consistency at most ``MAX_BASELINE_CONSISTENCY``, mean accuracy on the same shifted
    views at least ``MIN_BASELINE_ACCURACY``); then that task's AugShift runs. AugShift's
    numbers play no part in the choice. The runs of one stage do not depend on each other,
    so ``tools.prefetch`` trains them side by side; the next stage depends on this one's
    outcome. With ``stages``, the pilot stops after that many, and ``previous`` (the
    unfinished record) goes on from there, never repeating a stage: at the paper's length
    a GPU session holds a stage or two, not the pilot."""
    from .augshift import augshift_config, measure

    base = chapter_settings("augshift", profile)
    record = previous or {
        "chapter": "augshift", "profile": profile, "pilot_seeds": list(seeds),
        "criterion": f"the first candidate, in the fixed order, whose baseline has mean "
                     f"whole-digit consistency <= {MAX_BASELINE_CONSISTENCY} and mean "
                     f"accuracy on the same shifted views >= {MIN_BASELINE_ACCURACY}",
        "candidates": [], "chosen": None, "sample_size": None}
    if (record["profile"], record["pilot_seeds"]) != (profile, list(seeds)):
        raise ValueError(f"previous must be this pilot's own unfinished record (profile "
                         f"{profile!r}, seeds {list(seeds)}), got profile "
                         f"{record['profile']!r}, seeds {record['pilot_seeds']}")
    candidates, run = augshift_candidates(profile), 0
    while not finished(record) and (stages is None or run < stages):
        run += 1
        if record["chosen"] is None:  # the next candidate's baselines
            task = candidates[len(record["candidates"])]
            s = Settings(base, **task)
            runs = [measure("baseline", augshift_config(s, 0.0, None, seed), s.n_pairs)
                    for seed in seeds]
            row = {**task, "consistency": [r.consistency for r in runs],
                   "shifted_accuracy": [r.shifted_accuracy for r in runs]}
            row["meets"] = bool(np.mean(row["consistency"]) <= MAX_BASELINE_CONSISTENCY
                                and np.mean(row["shifted_accuracy"]) >= MIN_BASELINE_ACCURACY)
            record["candidates"].append(row)
            if row["meets"]:
                record["chosen"] = task
            continue
        _augshift_sample_size(record, base, seeds, profile)
    return record


def _augshift_sample_size(record: dict, base, seeds, profile: str) -> None:
    """The last stage: AugShift on the chosen task at every pilot seed, paired with its
    baselines; the sample size from the gains."""
    from .augshift import augshift_config, measure

    chosen = Settings(base, **record["chosen"])
    augshift_lambda = chosen.augshift_lambda
    aug = {seed: measure("aug", augshift_config(chosen, augshift_lambda, None, seed),
                         chosen.n_pairs) for seed in seeds}
    base_consistency = dict(zip(seeds, record["candidates"][-1]["consistency"]))  # chosen
    gains = [aug[k].consistency - base_consistency[k] for k in seeds]  # paired, per seed
    record["sample_size"] = sample_size(gains, chosen.min_effect, chosen.confidence,
                                        SEED_CAPS[profile])
    record["sample_size"]["statistic"] = (f"whole-digit consistency gain at lambda = "
                                          f"{augshift_lambda:g}")


# ---- chapter 5 -------------------------------------------------------------------------------
# Chapter 5's pilot seeds: its first edition's verdict seeds (100-104) and its second's
# (200-203), all seen.
REGION_ATTACK_PILOT_SEEDS = (*range(FIRST_VERDICT_SEED, FIRST_VERDICT_SEED + 5),
                             *range(SECOND_EDITION_SEED, SECOND_EDITION_SEED + 4))
# Chapter 5's per-half score, by the clean segmenters alone: "truth-class mIoU" (the
# paper's mIoU, over the classes of the half's ground truth) unless one relabelled pixel
# can move it by more than this on some pilot segmenter's half; then "pixel accuracy".
MAX_STRAY_SWING = 0.001


def region_attack_pilot(profile: str, seeds=REGION_ATTACK_PILOT_SEEDS) -> dict:
    """Chapter 5: the per-half score by a criterion blind to the attacks (how far one stray
    pixel can move the clean score, ``sides.stray_pixel_swing``), then the verdict seeds
    from the pilot's per-segmenter statistic (``sides.side_statistic``) under that score.
    The class-matched control's per-segmenter values (``sides.class_matched``) are kept
    beside it."""
    from .checks import HALF_SCORES
    from .segment import segmentation_budgets
    from .sides import (HALVES, class_matched, half_score, side_drops, side_experiment,
                        side_statistic, stray_pixel_swing)

    s = chapter_settings("region_attack", profile)
    confusions = {}
    for seed in seeds:
        setup = segmentation_budgets(s, seed, [s.epochs])[s.epochs]
        confusions[seed] = side_experiment(setup, s.region_ranking, s.region_channels,
                                           s.half_score)["confusions"]
    swings = {kind: max(stray_pixel_swing(confusions[seed]["clean"][half], kind)
                        for seed in seeds for half in HALVES)
              for kind in ("mIoU", *HALF_SCORES)}
    chosen = ("truth-class mIoU" if swings["truth-class mIoU"] <= MAX_STRAY_SWING
              else "pixel accuracy")
    scores = {seed: {run: {region: half_score(c, chosen) for region, c in conf.items()}
                     for run, conf in confusions[seed].items()} for seed in seeds}
    control = [class_matched(confusions[seed], chosen) for seed in seeds]
    return {"chapter": "region_attack", "profile": profile, "pilot_seeds": list(seeds),
            "ranking": s.region_ranking, "scene_mode": s.scene_mode,
            "criterion": f"truth-class mIoU unless one relabelled pixel moves it by more "
                         f"than {MAX_STRAY_SWING} on a pilot segmenter's half (clean), "
                         f"then pixel accuracy",
            "stray_pixel_swing": swings, "half_score": chosen,
            "clean": {half: [scores[seed]["clean"][half] for seed in seeds]
                      for half in HALVES},
            "drops": [side_drops(scores[seed]) for seed in seeds],
            "sample_size": sample_size([side_statistic(scores[seed]) for seed in seeds],
                                       s.min_effect, s.confidence, SEED_CAPS[profile]),
            "class_matched": {"values": control, "mean": float(np.mean(control)),
                              "sd": float(np.std(control, ddof=1))}}


def region_attack_pilot_text(record: dict, min_effect: float) -> str:
    """Chapter 5's pilot in a few lines: the per-half score its criterion chose and why,
    the statistic's spread and the seeds it asks for, and the class-matched control's
    pilot values."""
    swing = record["stray_pixel_swing"]
    runs, seeds = [], record["pilot_seeds"]
    for seed in seeds:  # consecutive seeds as one range: "100-104, 200-203"
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    ranges = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)
    matched = record["class_matched"]
    return "\n".join([
        f"pilot seeds {ranges}; criterion: {record['criterion']}",
        "the most one relabelled pixel moved a clean half: " + ", ".join(
            f"{kind} {value:.2g}" for kind, value in swing.items()),
        f"-> half_score = {record['half_score']!r}",
        "primary statistic: " + sample_size_text(record["sample_size"], min_effect),
        f"class-matched control: pilot mean {matched['mean']:+.3f} (sd {matched['sd']:.3f} "
        f"per seed)"])


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
    """Chapter 3's candidates as table rows: the task, the baseline's mean whole-digit
    consistency and shifted-view accuracy over the pilot seeds, and whether the criterion
    was met."""
    return {task_name(c): {
        "baseline consistency": float(np.mean(c["consistency"])),
        "shifted accuracy": float(np.mean(c["shifted_accuracy"])),
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


def forecast_text(size: dict | None) -> str:
    """What the pilot expects of the verdict, in one sentence, for the page to print before
    the verdict runs: the likely outcome and its probability, or, where the seed cap binds,
    that the verdict is likely inconclusive and what chance of a decision the cap buys."""
    if size is None:
        return "no finished pilot: no forecast of the verdict"
    probabilities = ", ".join(f"{k} {v:.2f}" for k, v in size["probabilities"].items())
    if size["capped"]:
        return (f"Forecast: likely inconclusive. The profile's cap of {size['n']} seeds "
                f"decides with probability {size['p_decided']:.2f} only (below "
                f"{POWER:.0%}) if the pilot's mean and sd are the truth ({probabilities}).")
    return (f"Forecast: {size['expected']} with probability {size['p_expected']:.2f} at "
            f"n = {size['n']} seeds if the pilot's mean and sd are the truth "
            f"({probabilities}).")


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
