"""Pilots: how a chapter's setting and its number of verdict seeds were fixed before any
verdict seed ran.

A pilot trains on *pilot seeds*, seeds the verdict never uses, and decides two things by
rules written down before it runs:

1. **A setting, by a criterion blind to the effect.** Chapter 3 picks its task by the
   baseline alone: the first candidate, in a fixed order, whose baseline whole-digit
   consistency is at most ``MAX_BASELINE_CONSISTENCY`` (room for a gain) with accuracy on
   the shifted views at least ``MIN_BASELINE_ACCURACY`` (a network that learnt the task).
   AugShift's gain is not looked at.
2. **The number of verdict seeds, by power.** If the pilot's mean and sd per seed were the
   truth, the verdict's outcome over n seeds is a random variable: its t statistic has a
   noncentral t distribution, so each outcome (holds / does not hold / inconclusive) has a
   probability (``outcome_probabilities``). The pilot asks for the fewest seeds, at least
   ``MIN_SEEDS``, whose verdict is *decided* with probability at least ``POWER`` (0.8), and
   says which outcome it expects and how likely it is (``seeds_for_power``). Where the
   profile cannot afford that many (``SEED_CAPS``), it takes the cap and says what chance
   of a decision the cap buys: the chapter then says, before the verdict, that it is likely
   inconclusive. (Sizing for an *expected* half-width equal to the gap, as earlier
   editions did, decides about half the time.) A pilot runs at least ``MIN_PILOT_SEEDS``
   seeds, so that its sd is a measurement rather than a guess. Seeds are never added after
   a verdict is seen.

The record goes to ``book/pilots/<chapter>-<profile>.json`` and is committed; the chapter
prints it, and a test checks that the profile's ``n_seeds`` is the record's. Run one with
``python -m posinfo.pilots augshift --profile default``.

Used by chapters 3 and 5 (their pilot records).
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
from scipy import stats

from .settings import Settings, chapter_settings
from .train import PLAN_ENV
from .verdict import MAX_SEEDS, Rule, check_level, t_interval

PILOT_DIR = Path(__file__).resolve().parents[2] / "book" / "pilots"
# A redesigned chapter's pilot seeds are its previous edition's verdict seeds, seen.
# Chapter 3's third edition: ten of its second edition's verdict seeds, 200-211
# (settings.SECOND_EDITION_SEED), seen, are its pilot seeds.
AUGSHIFT_PILOT_SEEDS = tuple(range(200, 210))
MIN_SEEDS = 3  # fewer leaves a t interval too wide to mean anything
# A verdict is sized for at least this chance of a decided outcome (holds or does not hold).
POWER = 0.8
# A pilot's sd from fewer seeds is a guess: chapter 5's five pilot seeds understated the
# spread its verdict then showed (issue 26).
MIN_PILOT_SEEDS = 8
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


# ---- the verdict's chances, and the seeds that buy them ---------------------------------------
def outcome_probabilities(mean: float, sd: float, n: int, rule: Rule,
                          level: float = 0.95) -> dict:
    """{outcome: probability} of the t-interval verdict (``verdict.decide``) over ``n`` seeds
    whose per-seed values are normal with this ``mean`` and ``sd``.

    The interval's low end clears the threshold exactly when the t statistic
    T = (xbar - threshold) / (s / sqrt(n)) exceeds the t quantile q of the interval; T has a
    noncentral t distribution, n - 1 degrees of freedom and noncentrality
    (mean - threshold) sqrt(n) / sd. So P(low > threshold) = 1 - F(q) and
    P(high < threshold) = F(-q): for "> threshold" the first is "holds" (the power of a
    one-sided t test at (1 - level) / 2) and the second "does not hold"; for "<" the
    reverse. The rest is "inconclusive"."""
    level = check_level(level)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (one seed has no interval), got {n!r}")
    if not (math.isfinite(mean) and math.isfinite(sd) and sd >= 0):
        raise ValueError(f"mean and sd must be finite numbers, sd >= 0; got {mean!r}, {sd!r}")
    gap = mean - rule.threshold
    if sd == 0:  # every seed the same value: the interval is that point
        above, below = float(gap > 0), float(gap < 0)
    else:
        q, df, nc = stats.t.ppf((1 + level) / 2, n - 1), n - 1, gap * math.sqrt(n) / sd
        above, below = float(stats.nct.sf(q, df, nc)), float(stats.nct.cdf(-q, df, nc))
    holds, short = (above, below) if rule.direction == ">" else (below, above)
    return {"holds": holds, "does not hold": short,
            "inconclusive": max(0.0, 1.0 - holds - short)}


def seeds_for_power(mean: float, sd: float, rule: Rule, level: float = 0.95, cap: int = 12,
                    power: float = POWER, smallest: int | None = None) -> dict:
    """The fewest verdict seeds, from ``smallest`` (MIN_SEEDS) to ``cap``, whose verdict is
    decided (holds or does not hold) with probability at least ``power`` if the pilot's
    ``mean`` and ``sd`` were the truth (``outcome_probabilities``); where none is, the cap,
    with the power the cap buys.

    Returns {"n", "capped", "p_decided", "expected", "p_expected", "probabilities",
    "needed"}: ``expected`` is the more likely decided outcome at n and ``p_expected`` its
    probability; ``needed`` the fewest seeds (up to MAX_SEEDS) that would reach ``power``,
    None when none does (a mean on the threshold never decides more often than 1 - level)."""
    smallest = MIN_SEEDS if smallest is None else smallest
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < smallest:
        raise ValueError(f"cap must be an integer >= {smallest}, got {cap!r}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power!r}")

    def decided(n):
        p = outcome_probabilities(mean, sd, n, rule, level)
        return p["holds"] + p["does not hold"], p

    needed = next((n for n in range(2, MAX_SEEDS + 1) if decided(n)[0] >= power), None)
    n = next((n for n in range(smallest, cap + 1) if decided(n)[0] >= power), cap)
    p_decided, probabilities = decided(n)
    expected = max(("holds", "does not hold"), key=probabilities.get)
    return {"n": n, "capped": p_decided < power, "p_decided": p_decided,
            "expected": expected, "p_expected": probabilities[expected],
            "probabilities": probabilities, "needed": needed}


def sample_size(values, min_effect: float, confidence: float, cap: int,
                direction: str = ">") -> dict:
    """The verdict seeds a pilot's per-seed statistic asks for: ``seeds_for_power`` at the
    pilot's mean and sd, with a reason in words, and the pilot's own interval and values."""
    if len(values) < MIN_PILOT_SEEDS:
        raise ValueError(f"a pilot needs at least {MIN_PILOT_SEEDS} seeds for its sd to mean "
                         f"something, got {len(values)} values")
    estimate = t_interval(values, confidence)
    size = seeds_for_power(estimate.value, estimate.sd, Rule("pilot", min_effect, direction),
                           confidence, cap)
    chance = (f"P(decided) = {size['p_decided']:.2f}, most likely "
              f"{size['expected']!r} (P = {size['p_expected']:.2f})")
    if size["capped"]:
        beyond = (f"{size['needed']} seeds would reach {POWER:.0%}" if size["needed"]
                  else f"no number of seeds up to {MAX_SEEDS} reaches {POWER:.0%}")
        reason = (f"the profile affords {cap} seeds, at which {chance}: likely "
                  f"inconclusive ({beyond})")
    else:
        reason = f"the fewest seeds (at least {MIN_SEEDS}) with {chance}"
    return {**size, "reason": reason, "mean": estimate.value, "sd": estimate.sd,
            "low": estimate.low, "high": estimate.high,
            "values": [float(v) for v in values]}


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
            runs = [measure("baseline", augshift_config(s, 0.0, False, seed), s.n_pairs)
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
    lam = chosen.augshift_lambda
    aug = {seed: measure("aug", augshift_config(chosen, lam, False, seed), chosen.n_pairs)
           for seed in seeds}
    base_consistency = dict(zip(seeds, record["candidates"][-1]["consistency"]))  # chosen
    gains = [aug[k].consistency - base_consistency[k] for k in seeds]  # paired, per seed
    record["sample_size"] = sample_size(gains, chosen.min_effect, chosen.confidence,
                                        SEED_CAPS[profile])
    record["sample_size"]["statistic"] = (f"whole-digit consistency gain at lambda = "
                                          f"{lam:g}")


# ---- chapter 5 -------------------------------------------------------------------------------
# Chapter 5's pilot seeds: its first edition's verdict seeds (100-104) and its second's
# (200-203), all seen.
REGION_ATTACK_PILOT_SEEDS = (*range(100, 105), *range(200, 204))
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
