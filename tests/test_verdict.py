"""The verdict rules on synthetic per-seed numbers whose answers are known by hand."""
import json
import math
import re

import numpy as np
import pytest
from scipy import stats

from posinfo import power
from posinfo.interval import Estimate, Rule, decide, paired_difference, t_interval
from posinfo.power import MAX_SEEDS
from posinfo.tables import format_table
from posinfo.verdict import RECORD_MIME, VERDICT_LINE, Verdict, judge, records, show

GAIN = Rule("gain", 0.02)


def test_t_interval_matches_a_hand_computation():
    # mean 2, sd 1, n 3: t(0.975, 2 df) = 4.302653, half-width 4.302653 / sqrt(3) = 2.484138
    est = t_interval([1.0, 2.0, 3.0])
    assert est.value == pytest.approx(2.0) and est.sd == pytest.approx(1.0)
    assert (est.low, est.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert est.n == 3 and est.level == 0.95
    # a 90% interval is narrower: t(0.95, 2 df) = 2.919986
    assert t_interval([1.0, 2.0, 3.0], 0.9).high == pytest.approx(2 + 2.919986 / 3 ** 0.5)


def test_a_clear_effect_holds():
    verdict = judge(3, GAIN, t_interval([0.10, 0.11, 0.12, 0.09, 0.10]))
    assert verdict.outcome == "holds"
    assert "above +0.020" in verdict.explanation()


def test_a_clear_absence_does_not_hold():
    verdict = judge(3, Rule("gain", 0.05), t_interval([-0.01, 0.0, 0.01, -0.005]))
    assert verdict.outcome == "does not hold"


def test_an_interval_that_straddles_the_rule_is_inconclusive_and_says_what_would_decide_it():
    est = t_interval([0.0, 0.04, 0.08])  # mean 0.04, sd 0.04: [-0.059, +0.139]
    verdict = judge(3, GAIN, est)
    assert verdict.outcome == "inconclusive"
    text = verdict.explanation()
    found = re.search(r"about (\d+) seeds would give an 80% chance of a decided outcome, "
                      r"most likely '(holds|does not hold)'", text)
    assert found, text
    n = int(found[1])
    # the fewest seeds whose verdict, at this mean and sd, is decided 80% of the time...
    decided = [1 - power.outcome_probabilities(est.value, est.sd, k, GAIN)["inconclusive"]
               for k in (n - 1, n)]
    assert decided[0] < power.POWER <= decided[1]
    # ...and the likelier decision there (a mean above the threshold: holds)
    assert found[2] == "holds"
    assert "(mean +0.040, sd 0.040 per seed)" in text


def test_the_seeds_an_explanation_asks_for_decide_more_often_than_the_half_width_rule():
    # sd 1, gap 1: the old rule (expected half-width below the gap) asked for 7 seeds, at
    # which a verdict is decided only about 60% of the time; the power rule asks for more
    p7 = power.outcome_probabilities(1.0, 1.0, 7, Rule("x", 0.0))
    assert 0.55 < p7["holds"] < 0.65
    text = judge(1, Rule("x", 0.0), Estimate(1.0, -1.0, 3.0, 3, 0.95, 1.0)).explanation()
    assert int(re.search(r"about (\d+) seeds", text)[1]) > 7
    below = judge(1, Rule("x", 0.0), Estimate(-1.0, -3.0, 1.0, 3, 0.95, 1.0)).explanation()
    assert "most likely 'does not hold'" in below
    # on the line: never decided more often than 1 - level, whatever the seeds
    on_line = judge(1, Rule("x", 0.0), Estimate(0.0, -1, 1, 3, 0.95, 1.0)).explanation()
    assert "no practical number of seeds" in on_line


def test_one_seed_is_inconclusive_whatever_its_value():
    est = t_interval([0.9])
    assert math.isinf(est.low) and math.isinf(est.high)
    verdict = judge(1, GAIN, est)
    assert verdict.outcome == "inconclusive"
    assert "n_seeds >= 2" in verdict.explanation()
    assert verdict.line().endswith("[95% CI -inf, +inf]; needs > +0.020; n = 1")


def test_a_below_rule_mirrors_the_above_rule():
    below = Rule("location kept", 0.5, "<")
    assert decide(t_interval([0.1, 0.12, 0.11]), below) == "holds"
    assert decide(t_interval([0.9, 0.92, 0.91]), below) == "does not hold"
    assert decide(t_interval([0.3, 0.7, 0.5]), below) == "inconclusive"


def test_pairing_removes_the_spread_the_arms_share():
    rng = np.random.default_rng(0)
    control = rng.normal(0.8, 0.1, size=6)  # seeds differ a lot...
    treated = control + 0.05 + rng.normal(0, 0.002, size=6)  # ...the effect hardly at all
    paired = paired_difference(treated, control)
    assert decide(paired, GAIN) == "holds"
    # the interval is over the per-seed differences: t(0.975, 5) sd(d) / sqrt(6) either side
    d = treated - control
    half = stats.t.ppf(0.975, 5) * d.std(ddof=1) / math.sqrt(6)
    assert paired.value == pytest.approx(d.mean())
    assert (paired.low, paired.high) == pytest.approx((d.mean() - half, d.mean() + half))
    # the arms' own intervals overlap: compared unpaired, the effect would be lost
    assert t_interval(treated).low < t_interval(control).high
    with pytest.raises(ValueError, match="one value per shared seed"):
        paired_difference([1, 2, 3], [1, 2])


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True, "0.95"])
def test_a_bad_confidence_level_is_refused(bad):
    with pytest.raises(ValueError, match="confidence must be a number in"):
        t_interval([1, 2], bad)


def test_bad_rules_and_values_are_refused():
    with pytest.raises(ValueError, match="direction must be one of"):
        Rule("x", 0.1, ">=")
    with pytest.raises(ValueError, match="finite"):
        t_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one value"):
        t_interval([])


def test_the_verdict_line_has_the_books_form_and_the_front_page_reads_it():
    line = judge(4, Rule("random-N minus top-N mIoU", 0.05), t_interval([0.01, -0.02, 0.0])).line()
    m = VERDICT_LINE.match(line)
    assert m, line
    assert m.group("claim") == "4" and m.group("outcome") == "does not hold"
    assert m.group("statistic") == "random-N minus top-N mIoU"
    assert m.group("estimate") == "-0.003" and m.group("rule") == "> +0.050"
    assert m.group("n") == "3"


def test_format_table_aligns_labels_left_and_values_right():
    text = format_table({"baseline": {"acc": 0.9, "n": 3},
                         "after GAP": {"acc": 0.25, "n": 3, "note": "x"}}, index="arm")
    assert text.splitlines() == ["arm          acc  n  note",
                                 "baseline   0.900  3",
                                 "after GAP  0.250  3     x"]
    assert format_table({"a": {"ci": t_interval([1.0, 2.0, 3.0])}}).endswith(
        "+2.000 [95% CI -0.484, +4.484]")


def test_a_budget_curve_reports_each_outcome_and_where_the_claim_first_holds():
    from posinfo.budgets import budget_table, where_it_holds
    curve = {4: t_interval([0.10, 0.11, 0.12]), 1: t_interval([0.0, 0.001, -0.001]),
             2: t_interval([0.0, 0.08, 0.04])}
    table = budget_table(curve, GAIN, "gain [CI]").splitlines()
    assert [line.split()[2] for line in table[1:]] == ["1", "2", "4"]  # sorted by budget
    assert table[1].endswith("does not hold") and table[2].endswith("inconclusive")
    assert table[3].endswith("holds")
    assert where_it_holds(curve, GAIN) == "4 epochs"  # 1 and 2 do not hold
    assert where_it_holds({1: curve[1]}, GAIN) == "none of the budgets tried"
    held = {1: curve[4], 2: curve[1], 4: curve[4], 8: curve[4]}
    assert where_it_holds(held, GAIN) == "1, 4 and 8 epochs"
    assert where_it_holds({1: curve[4]}, GAIN) == "1 epoch"


# ---- edge cases, pinned ------------------------------------------------------------------
def test_an_interval_end_exactly_on_the_minimal_effect_has_not_cleared_it():
    # ">" is strict: the interval [0.5, 0.7] cannot exclude 0.5 itself, so "> 0.5" is not
    # shown; likewise [0.3, 0.5] does not show the statistic short of it.
    rule = Rule("x", 0.5)
    assert decide(Estimate(0.6, 0.5, 0.7, 3, 0.95, 0.1), rule) == "inconclusive"
    assert decide(Estimate(0.4, 0.3, 0.5, 3, 0.95, 0.1), rule) == "inconclusive"
    assert decide(Estimate(0.6, 0.5 + 1e-12, 0.7, 3, 0.95, 0.1), rule) == "holds"
    below = Rule("x", 0.5, "<")
    assert decide(Estimate(0.4, 0.3, 0.5, 3, 0.95, 0.1), below) == "inconclusive"
    assert decide(Estimate(0.6, 0.5, 0.7, 3, 0.95, 0.1), below) == "inconclusive"


def test_identical_values_give_a_zero_width_interval_at_exactly_that_value():
    # Chapter 1 prints [+0.889, +0.889]: every seed located as far above chance. Summed in
    # floats, three copies of 0.889 have a mean one ulp off and an sd of ~1e-16.
    est = t_interval([0.889] * 3)
    assert (est.value, est.low, est.high, est.sd, est.n) == (0.889, 0.889, 0.889, 0.0, 3)
    assert decide(est, Rule("x", 0.5)) == "holds"
    assert decide(est, Rule("x", 0.889)) == "inconclusive"  # on the line: strict, see above
    assert decide(est, Rule("x", 0.95)) == "does not hold"
    # with no spread, a mean on the threshold is never decided
    assert "no practical number of seeds" in judge(1, Rule("x", 0.889), est).explanation()


def test_the_explanation_stops_at_max_seeds_and_says_so():
    # sd 1: 80% power at MAX_SEEDS (1000) needs a gap of about 2.8 / sqrt(1000) = 0.089
    reachable = judge(1, Rule("x", 0.0), Estimate(0.1, -1.0, 1.0, 3, 0.95, 1.0)).explanation()
    n = int(re.search(r"about (\d+) seeds", reachable)[1])
    assert 700 < n < MAX_SEEDS
    too_close = Estimate(0.08, -1.0, 1.0, 3, 0.95, 1.0)
    assert power.outcome_probabilities(0.08, 1.0, MAX_SEEDS, Rule("x", 0.0))["holds"] < 0.8
    assert "no practical number of seeds" in judge(1, Rule("x", 0.0), too_close).explanation()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "0.5", True])
def test_a_minimal_effect_that_is_not_a_finite_number_is_refused(bad):
    # NaN would make every comparison False: an "inconclusive" that no seeds could change
    with pytest.raises(ValueError, match=r"minimal effect \(threshold\) of rule 'gain' must be "
                                         r"a finite number, got"):
        Rule("gain", bad)


def test_an_interval_with_a_nan_end_is_refused():
    with pytest.raises(ValueError, match="must have numbers at both ends"):
        decide(Estimate(0.5, math.nan, 1.0, 3, 0.95, 0.1), GAIN)


def test_paired_arms_are_paired_by_seed_not_by_position():
    treated = {101: 0.9, 100: 0.7, 102: 0.8}  # dict order is not seed order
    control = {100: 0.6, 101: 0.8, 102: 0.8}
    # per seed: 100 -> 0.1, 101 -> 0.1, 102 -> 0.0; mean 1/15, sd sqrt(1/300)
    est = paired_difference(treated, control)
    assert est.value == pytest.approx(1 / 15) and est.sd == pytest.approx((1 / 300) ** 0.5)
    assert est.n == 3


def test_paired_arms_at_different_seeds_are_refused_naming_both_seed_lists():
    # same count, different seeds: pairing by position would compare unrelated runs
    with pytest.raises(ValueError, match=r"treated seeds \[100, 101, 102\] and control seeds "
                                         r"\[101, 102, 103\]"):
        paired_difference({100: 1, 101: 2, 102: 3}, {101: 1, 102: 2, 103: 3})
    with pytest.raises(ValueError, match="both be mappings"):
        paired_difference({100: 1.0, 101: 2.0}, [1.0, 2.0])


# ---- judge, the record and show -------------------------------------------------------------
def test_judge_builds_the_verdict_from_per_seed_values_and_keeps_them():
    verdict = judge(1, GAIN, {102: 0.3, 100: 0.1, 101: 0.2}, level=0.9)
    d = np.array([0.1, 0.2, 0.3])
    half = stats.t.ppf(0.95, 2) * d.std(ddof=1) / math.sqrt(3)
    assert verdict.estimate.value == pytest.approx(0.2) and verdict.estimate.level == 0.9
    assert verdict.estimate.high == pytest.approx(0.2 + half)
    record = verdict.record()
    assert record["per_seed"] == {"100": 0.1, "101": 0.2, "102": 0.3}  # in seed order
    assert (record["n"], record["level"], record["threshold"], record["direction"]) == (
        3, 0.9, GAIN.threshold, ">")
    assert record["line"] == verdict.line() and record["outcome"] == verdict.outcome
    assert Verdict.from_record(json.loads(json.dumps(record))) == verdict


def test_paired_arms_are_differenced_seed_by_seed_and_both_kept():
    verdict = judge(3, GAIN, {200: 0.9, 201: 0.7}, control={201: 0.6, 200: 0.5},
                    arms=("augshift", "baseline"))
    record = verdict.record()
    assert record["per_seed"] == pytest.approx({"200": 0.4, "201": 0.1})
    assert record["arms"] == {"names": ["augshift", "baseline"],
                              "treated": {"200": 0.9, "201": 0.7},
                              "control": {"200": 0.5, "201": 0.6}}
    assert Verdict.from_record(record) == verdict
    with pytest.raises(ValueError, match="baseline seeds \\[200, 202\\]"):
        judge(3, GAIN, {200: 0.9, 201: 0.7}, control={200: 0.5, 202: 0.6},
              arms=("augshift", "baseline"))


@pytest.mark.parametrize("per_seed,message", [
    ([0.1, 0.2], "per_seed must be a mapping"),
    ({}, "at least one seed"),
    ({100: float("nan")}, "finite values, got nan at seed 100"),
    ({"100": 0.1}, "seeds must be integers"),
])
def test_judge_refuses_values_without_their_seeds(per_seed, message):
    with pytest.raises(ValueError, match=message):
        judge(1, GAIN, per_seed)


def test_a_one_seed_record_is_strict_json_and_a_bare_estimate_has_none():
    record = judge(1, GAIN, {100: 0.5}).record()
    assert (record["low"], record["high"], record["sd"]) == (None, None, None)
    json.dumps(record, allow_nan=False)
    with pytest.raises(ValueError, match="has no record"):
        judge(1, GAIN, t_interval([0.1, 0.2])).record()


def test_show_prints_the_line_and_records_read_it_back(capsys):
    verdict = judge(2, GAIN, {100: 0.1, 101: 0.3})
    show(verdict)  # outside IPython: the line only
    assert capsys.readouterr().out == verdict.line() + "\n"
    notebook = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": verdict.line()},
        {"output_type": "display_data", "data": {RECORD_MIME: {}},
         "metadata": {RECORD_MIME: verdict.record()}}]}]}
    assert records(notebook) == [verdict.record()]
