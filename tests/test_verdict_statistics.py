"""Each chapter judges its claim's statistic, as the library computes it.

A verdict record (``posinfo.verdict.show``) keeps the per-seed values a chapter judged; that
they re-derive the printed line is ``test_committed_verdicts``'s business. This test asks
the other question: are they the values of the claim's statistic at all? Each chapter is
executed at the smoke profile, and its records' per-seed values are computed again, from the
same cached models, by the one library function of its claim (``CLAIM_STATISTICS``). A
chapter that judges another statistic (chapter 4's bottom-N instead of its top-N), swaps two
arms or drops a seed records values that differ from the function's, and fails.

``CLAIM_STATISTICS`` maps a chapter (its settings key) to its claim and, per verdict label
("" for the main verdict, e.g. "control" for a second one), a function ``settings -> {seed:
value}`` of the statistic, or ``settings -> ({seed: treated}, {seed: control})`` for paired
arms (the record's per-seed values are then treated - control). A chapter with no row, or
a record whose label has no function, fails.
"""
import os

import pytest

from posinfo import attack, augshift, permutenet, sides
from posinfo.run import chapter_sources, execute
from posinfo.segment import segmentation_budgets
from posinfo.settings import chapter_settings
from posinfo.train import accuracy_above_chance, model_config, train_classifier
from posinfo.verdict import records

# The per-seed values of a statistic recomputed from the same cached models on the same
# machine: only the order of float sums inside one evaluation may differ.
TOLERANCE = 1e-6


def location_above_chance(settings) -> dict:
    """Claim 1: the main GAPNet's location accuracy minus chance, per seed."""
    return accuracy_above_chance({s: train_classifier(model_config(settings, seed=s))
                                  for s in settings.seeds})


def class_minus_location_kept(settings) -> dict:
    """Claim 2: class kept minus location kept under the shuffle after GAP, per seed."""
    runs = permutenet.run_placements(settings)
    return permutenet.asymmetry(runs, settings.epochs)["class kept - location kept"]


def top_n_extra_damage(settings) -> dict:
    """Claim 4: random-N minus top-N mIoU over the judged N, per segmenter (seed)."""
    return {s: attack.extra_damage(attack.flip_attack(
        segmentation_budgets(settings, s, settings.budget_epochs)[settings.epochs],
        settings, seed=s)) for s in settings.seeds}


def augshift_consistency_gain(settings) -> dict:
    """Claim 3: AugShift's whole-digit consistency minus the baseline's, per seed, from the
    runs trained for the verdict's budget."""
    return augshift.consistency_gain(augshift.run_experiment(settings, progress=None),
                                     settings)


def own_minus_other_side(settings) -> dict:
    """Claim 5: the own-side drop minus the size of the other side's change, averaged over
    the two attacks, per segmenter (seed) at the verdict's budget. (The class-matched
    control is an interval the chapter prints, not a verdict: it keeps no record.)"""
    return {s: sides.side_statistic(sides.side_experiment(
        segmentation_budgets(settings, s, settings.budget_epochs)[settings.epochs],
        settings.region_ranking, settings.region_channels, settings.half_score)["scores"])
        for s in settings.seeds}


CLAIM_STATISTICS = {
    "gap_keeps_position": (1, {"": location_above_chance}),
    "channel_order": (2, {"": class_minus_location_kept}),
    "augshift": (3, {"": augshift_consistency_gain}),
    "position_channels": (4, {"": top_n_extra_damage}),
    "region_attack": (5, {"": own_minus_other_side}),
}


def statistic_problems(record: dict, expected) -> list[str]:
    """How a record's per-seed values differ from the library function's ``expected``
    ({seed: value}, or (treated, control) for paired arms)."""
    where = f"Claim {record['claim']}{' (' + record['label'] + ')' if record['label'] else ''}"
    got = {int(s): v for s, v in record["per_seed"].items()}
    problems = []
    if isinstance(expected, tuple):
        treated, control = expected
        arms = record.get("arms") or {}
        for name, want in (("treated", treated), ("control", control)):
            have = {int(s): v for s, v in arms.get(name, {}).items()}
            problems += statistic_problems({**record, "per_seed": have, "arms": None,
                                            "label": f"{record['label']} {name} arm".strip()},
                                           want)
        expected = {s: treated[s] - control[s] for s in treated if s in control}
    if sorted(got) != sorted(expected):
        return problems + [f"{where}: judged seeds {sorted(got)}, the library's statistic has "
                           f"seeds {sorted(expected)}"]
    off = {s: (got[s], expected[s]) for s in got if abs(got[s] - expected[s]) > TOLERANCE}
    if off:
        problems.append(f"{where}: judged {off} (judged, library) at seeds {sorted(off)}")
    return problems


@pytest.fixture(scope="module")
def smoke_cache(tmp_path_factory):
    """The model cache the chapters and the recomputation share: make test's own (nbval of
    the chapters then reuses it), else one for this module (unit runs set none)."""
    given = os.environ.get("POSINFO_CACHE")
    folder = given if given and given != "off" else str(tmp_path_factory.mktemp("cache"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSINFO_CACHE", folder)
        patch.setenv("POSINFO_PROFILE", "smoke")
        yield folder


def test_every_chapter_has_a_row():
    assert sorted(CLAIM_STATISTICS) == sorted(chapter_sources())
    assert sorted(claim for claim, _ in CLAIM_STATISTICS.values()) == [1, 2, 3, 4, 5]
    assert all(functions and all(map(callable, functions.values()))
               for _, functions in CLAIM_STATISTICS.values())


@pytest.mark.parametrize("key", list(chapter_sources()))
def test_a_chapter_judges_its_claims_statistic(key, smoke_cache, tmp_path):
    assert key in CLAIM_STATISTICS, f"chapter {key!r} has no row in CLAIM_STATISTICS"
    claim, functions = CLAIM_STATISTICS[key]
    notebook = tmp_path / f"{key}.ipynb"
    execute(key, chapter_sources()[key], notebook, {"profile": "smoke"})
    kept = records(notebook)
    assert sorted(r["label"] for r in kept) == sorted(functions), \
        f"{key}: records {[r['label'] for r in kept]}, table {sorted(functions)}"
    settings = chapter_settings(key, "smoke")
    problems = []
    for record in kept:
        assert record["claim"] == claim
        problems += statistic_problems(record, functions[record["label"]](settings))
    assert problems == []


RECORD = {"claim": 4, "label": "", "per_seed": {"100": 0.25, "101": 0.5, "102": 0.0},
          "arms": None}


@pytest.mark.parametrize("expected,complaint", [
    ({100: 0.25, 101: 0.5, 102: 0.0}, None),
    ({100: 0.25, 101: 0.5, 102: 0.1}, "at seeds [102]"),        # another statistic
    ({100: 0.25, 101: 0.5}, "judged seeds [100, 101, 102]"),     # a seed the library lacks
    ({100: 0.25, 101: 0.5, 102: 0.0, 103: 1.0}, "has seeds [100, 101, 102, 103]"),  # dropped
])
def test_a_record_is_compared_with_the_librarys_values(expected, complaint):
    problems = statistic_problems(RECORD, expected)
    assert problems == [] if complaint is None else any(complaint in p for p in problems)


def test_paired_arms_swapped_or_differing_are_caught():
    treated, control = {100: 0.5, 101: 0.75}, {100: 0.25, 101: 0.25}
    record = {"claim": 3, "label": "", "per_seed": {"100": 0.25, "101": 0.5},
              "arms": {"names": ["a", "b"], "treated": {"100": 0.5, "101": 0.75},
                       "control": {"100": 0.25, "101": 0.25}}}
    assert statistic_problems(record, (treated, control)) == []
    swapped = statistic_problems(record, (control, treated))
    assert any("treated arm" in p for p in swapped) and any(
        "judged" in p and "Claim 3:" in p for p in swapped), swapped
