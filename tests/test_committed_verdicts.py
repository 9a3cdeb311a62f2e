"""Every committed verdict re-derived from what its notebook printed.

nbval masks the numbers, the outcome and n of the verdict line (tests/nbval_sanitize.cfg),
so it would pass if ``decide`` always said "holds", if a chapter changed its minimal effect
or printed a wrong number. This test stands in for what the masking gives up. For each
``Claim N: ...`` line of a committed notebook (book/ and book/gpu/, any number per notebook):

- the outcome is ``posinfo.verdict.decide`` applied to the printed interval and rule;
- the estimate lies inside its interval;
- the minimal effect, the confidence level and n are those of the settings table the notebook
  itself printed (its first settings output), tied to the line through the ``Rule(...)`` call
  in the notebook's own code. Not today's settings.py: the GPU notebooks are an older edition
  and chapters are redesigned between executions; a notebook must agree with itself.

And, where the notebook kept its verdict records (``posinfo.verdict.show``), each record's
per-seed values are re-derived here with an implementation independent of ``posinfo.verdict``
(numpy and ``scipy.stats.t`` directly): the mean, sd and 95% interval they give must be the
printed line's, the "(primary)" table rows' (at most one per record, in the records' order)
and the explanation's: its mean and sd, and the seeds that would give an 80% chance of a
decided outcome with the likelier outcome (a noncentral t, ``scipy.stats.nct``, computed
here); paired arms must give the stored differences. A self-consistent line
rewritten by hand has no per-seed values behind it, and fails. Every chapter of the book's
first part (book/, the default profile) must keep a record; a `gpu` notebook without one
(the first edition, executed before verdicts kept records) is listed as a skip naming it.
"""
import ast
import json
import math
import re

import numpy as np
import pytest
from scipy import stats

from posinfo.run import BOOK
from posinfo.interval import OUTCOMES, Estimate, Rule, decide, signed
from posinfo.verdict import RECORD_MIME, VERDICT_LINE

NOTEBOOKS = [*sorted(BOOK.glob("[0-9][0-9]_*.ipynb")),
             *sorted((BOOK / "gpu").glob("[0-9][0-9]_*.ipynb"))]
SETTING_ROW = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*)\s{2,}(?P<value>.+)$")
# A verdict prints its numbers to 3 decimals: the true value lies within half a unit of the
# last digit of the printed one.
HALF_UNIT = 0.0005


def _stdout(cell) -> str:
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", [])
                   if o.get("name") == "stdout")


def _code_cells(nb: dict) -> list:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def printed_settings(nb: dict) -> dict:
    """{name: printed value} of the first output that is a settings table (``profile`` row)."""
    for cell in _code_cells(nb):
        text = _stdout(cell)
        if re.search(r"^profile\s{2,}\S+$", text, re.M):
            rows = (SETTING_ROW.match(line) for line in text.splitlines())
            return {m["name"]: m["value"].strip() for m in rows if m}
    return {}


def _threshold_source(node):
    """What a Rule's threshold argument reads: ('knob', name) for settings.NAME /
    settings["NAME"], ('literal', value) for a number written in the code."""
    if isinstance(node, ast.Attribute):
        return "knob", node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return "knob", node.slice.value
    try:
        return "literal", float(ast.literal_eval(node))
    except (ValueError, TypeError):
        return None


def rules_in_code(nb: dict) -> dict:
    """{statistic: [(threshold source, direction), ...]} of every ``Rule(...)`` the notebook's
    code builds with a literal statistic (a statistic may be judged against two rules)."""
    rules = {}
    for cell in _code_cells(nb):
        source = "".join(cell["source"])
        try:
            tree = ast.parse(source)
        except SyntaxError:  # IPython magics; a chapter builds its rules in plain Python
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Rule"):
                continue
            args = list(node.args) + [None] * 3
            kw = {k.arg: k.value for k in node.keywords}
            statistic, threshold = kw.get("statistic", args[0]), kw.get("threshold", args[1])
            direction = kw.get("direction", args[2])
            if not isinstance(statistic, ast.Constant) or threshold is None:
                continue
            rules.setdefault(statistic.value, []).append(
                (_threshold_source(threshold),
                 direction.value if isinstance(direction, ast.Constant) else ">"))
    return rules


def possible_outcomes(low: float, high: float, rule: Rule) -> set:
    """The outcomes of every interval whose ends round to the printed ones."""
    def ends(x):
        return [x] if math.isinf(x) else [x - HALF_UNIT, x + HALF_UNIT]
    return {decide(Estimate(0.0, lo, hi, 2, 0.95, math.nan), rule)
            for lo in ends(low) for hi in ends(high) if lo <= hi}


def verdict_problems(nb: dict) -> list:
    """Every way the notebook's verdict lines disagree with what the notebook printed."""
    settings, rules = printed_settings(nb), rules_in_code(nb)
    lines = [m for cell in _code_cells(nb) for m in VERDICT_LINE.finditer(_stdout(cell))]
    problems = [] if lines else ["no verdict line"]
    # a line that looks like a verdict but does not parse would escape every check below
    claimed = [line for cell in _code_cells(nb) for line in _stdout(cell).splitlines()
               if re.match(r"Claim \d+\b.*: ", line)]
    problems += [f"not in the verdict line's form: {line!r}" for line in claimed
                 if not VERDICT_LINE.match(line)]
    if not settings:
        problems.append("no settings table printed (no 'profile' row)")
    for m in lines:
        where = f"Claim {m['claim']}{' (' + m['label'] + ')' if m['label'] else ''} " \
                f"[{m['statistic']}]"
        est, low, high = float(m["estimate"]), float(m["low"]), float(m["high"])
        if not low <= est <= high:
            problems.append(f"{where}: estimate {m['estimate']} outside its interval "
                            f"[{m['low']}, {m['high']}]")
        direction, printed_threshold = m["rule"].split(" ", 1)
        rule = Rule(m["statistic"], float(printed_threshold), direction)
        allowed = possible_outcomes(low, high, rule)
        if m["outcome"] not in allowed:
            problems.append(f"{where}: prints {m['outcome']!r}, but the rule {m['rule']} on "
                            f"[{m['low']}, {m['high']}] gives {sorted(allowed)}")
        if m["statistic"] not in rules:
            problems.append(f"{where}: no Rule({m['statistic']!r}, ...) in the notebook's code")
        else:
            coded = []
            for source, coded_direction in rules[m["statistic"]]:
                if source is None:
                    coded.append("a minimal effect that is neither a setting nor a number")
                elif source[0] == "knob" and source[1] not in settings:
                    coded.append(f"minimal effect {source[1]!r}, not in the printed settings")
                else:
                    value = float(settings[source[1]]) if source[0] == "knob" else source[1]
                    text = f"{coded_direction} {signed(value)}"
                    if text == m["rule"]:
                        break
                    coded.append(f"{text} ({source[1]})")
            else:
                problems.append(f"{where}: needs {m['rule']}, but the settings say "
                                + " or ".join(coded))
        if "n_seeds" in settings and int(m["n"]) != int(settings["n_seeds"]):
            problems.append(f"{where}: n = {m['n']}, but the settings ran n_seeds = "
                            f"{settings['n_seeds']}")
        if "confidence" in settings and \
                int(m["level"]) != round(100 * float(settings["confidence"])):
            problems.append(f"{where}: a {m['level']}% interval, but the settings ask for "
                            f"confidence {settings['confidence']}")
    return problems


# ---- the records, re-derived without posinfo.verdict --------------------------------------
PRIMARY_ROW = re.compile(r"\(primary\)\s+(?P<estimate>\S+) \[(?P<level>\d+)% CI (?P<low>\S+), "
                         r"(?P<high>\S+)\]")
# An inconclusive verdict's explanation (``Verdict.explanation``): what more seeds would buy.
EXPLAINED = re.compile(
    r"at the observed mean and spread \(mean (?P<mean>\S+), sd (?P<sd>\S+) per seed\),? "
    r"(?:about (?P<n>\d+) seeds would give an 80% chance of a decided outcome, most likely "
    r"'(?P<outcome>holds|does not hold)'|(?P<none>no practical number of seeds))")
POWER, MAX_SEEDS = 0.8, 1000


def notebook_records(nb: dict) -> list:
    """Every verdict record the notebook's outputs keep (read here, not by posinfo.verdict)."""
    return [out["metadata"][RECORD_MIME] for cell in _code_cells(nb)
            for out in cell.get("outputs", []) if RECORD_MIME in out.get("metadata", {})]


def rederive(record: dict) -> dict:
    """Mean, sd, interval, outcome and seeds needed of a record's per-seed values, computed
    from scratch: numpy's mean and sd, scipy's t quantile."""
    x = np.array([record["per_seed"][s] for s in sorted(record["per_seed"], key=int)], float)
    n, level, threshold = x.size, record["level"], record["threshold"]
    mean = float(x.mean())
    if n < 2:
        low, high, sd = -math.inf, math.inf, math.nan
    else:
        sd = float(x.std(ddof=1))
        half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    above, below = low > threshold, high < threshold
    if record["direction"] == "<":
        above, below = high < threshold, low > threshold
    outcome = "holds" if above else "does not hold" if below else "inconclusive"
    needed, likelier = (seeds_for_a_decision(mean, sd, record)
                        if n >= 2 and outcome == "inconclusive" else (None, None))
    return {"estimate": mean, "low": low, "high": high, "sd": sd, "n": n, "level": level,
            "outcome": outcome, "needed": needed, "likelier": likelier}


def seeds_for_a_decision(mean: float, sd: float, record: dict):
    """(fewest seeds k <= MAX_SEEDS, likelier decided outcome at k) whose verdict is decided
    with probability POWER if the values were normal with this mean and sd; (None, None)
    when none is. The interval clears the threshold from above when the t statistic
    (xbar - threshold) / (s / sqrt(k)) passes the t quantile: a noncentral t, k - 1 degrees,
    noncentrality (mean - threshold) sqrt(k) / sd."""
    level, threshold = record["level"], record["threshold"]
    for k in range(2, MAX_SEEDS + 1):
        q = stats.t.ppf(0.5 + level / 2, k - 1)
        if sd == 0:
            above, below = float(mean > threshold), float(mean < threshold)
        else:
            nc = (mean - threshold) * math.sqrt(k) / sd
            above, below = stats.nct.sf(q, k - 1, nc), stats.nct.cdf(-q, k - 1, nc)
        chances = ({"holds": above, "does not hold": below} if record["direction"] == ">"
                   else {"holds": below, "does not hold": above})
        if sum(chances.values()) >= POWER:
            return k, max(chances, key=chances.get)
    return None, None


def _close(printed: str, value: float) -> bool:
    """A number printed to 3 decimals (or +-inf) is ``value``, rounded."""
    if printed in ("+inf", "-inf", "inf"):
        return math.isinf(value) and (value > 0) == (printed != "-inf")
    return math.isfinite(value) and abs(float(printed) - value) <= HALF_UNIT + 1e-9


def record_problems(nb: dict) -> list:
    """Every way the notebook's printed verdicts disagree with its records' per-seed values."""
    kept = notebook_records(nb)
    derived = [rederive(record) for record in kept]  # each once: the explanations reuse them
    text = "\n".join(_stdout(c) for c in _code_cells(nb))
    lines = {(m["claim"], m["label"] or ""): m for m in VERDICT_LINE.finditer(text)}
    primary = list(PRIMARY_ROW.finditer(text))
    problems = []
    # a chapter may print no "(primary)" interval row; those it prints are its records' own
    if len(primary) > len(kept):
        problems.append(f"{len(primary)} '(primary)' rows printed for {len(kept)} records")
    recorded = set()
    for i, record in enumerate(kept):
        key = (str(record["claim"]), record["label"])
        where = f"Claim {key[0]}{' (' + key[1] + ')' if key[1] else ''} record"
        recorded.add(key)
        arms = record.get("arms")
        if arms:
            treated, control = arms["treated"], arms["control"]
            if not set(treated) == set(control) == set(record["per_seed"]):
                problems.append(f"{where}: arms at seeds {sorted(treated)} and "
                                f"{sorted(control)}, statistic at {sorted(record['per_seed'])}")
            else:
                off = [s for s in treated if abs(treated[s] - control[s]
                                                 - record["per_seed"][s]) > 1e-12]
                if off:
                    problems.append(f"{where}: per-seed value is not {arms['names'][0]} - "
                                    f"{arms['names'][1]} at seeds {off}")
        got = derived[i]
        if record["n"] != got["n"]:
            problems.append(f"{where}: n = {record['n']} for {got['n']} per-seed values")
        line = lines.get(key)
        if line is None:
            problems.append(f"{where}: no verdict line printed for it")
        else:
            for name in ("estimate", "low", "high"):
                if not _close(line[name], got[name]):
                    problems.append(f"{where}: the line prints {name} {line[name]}, its "
                                    f"per-seed values give {got[name]:+.4f}")
            if line["outcome"] != got["outcome"]:
                problems.append(f"{where}: the line prints {line['outcome']!r}, its per-seed "
                                f"values give {got['outcome']!r}")
            if (int(line["n"]), int(line["level"])) != (got["n"], round(100 * got["level"])):
                problems.append(f"{where}: the line prints n = {line['n']} at {line['level']}%, "
                                f"the record has {got['n']} values at {got['level']}")
            rule = f"{record['direction']} {signed(record['threshold'])}"
            if (line["rule"], line["statistic"]) != (rule, record["statistic"]):
                problems.append(f"{where}: the line judges {line['statistic']!r} by "
                                f"{line['rule']}, the record {record['statistic']!r} by {rule}")
        if i < len(primary):
            row = primary[i]
            if not all(_close(row[name], got[name]) for name in ("estimate", "low", "high")):
                problems.append(f"{where}: the (primary) row prints {row.group(0)!r}, its "
                                f"per-seed values give {got['estimate']:+.3f} "
                                f"[{got['low']:+.3f}, {got['high']:+.3f}]")
    explained = list(EXPLAINED.finditer(text))
    # the earlier editions' wording ("about N seeds would decide it"), which said neither
    # which way nor how likely; a pilot's own line ("63 seeds would reach 80%") is not it
    problems += [f"explanation not in the power form: {line.strip()!r}"
                 for line in text.splitlines() if "seeds would decide" in line
                 and not EXPLAINED.search(line)]
    for m in explained:
        said = (None, None) if m["none"] else (int(m["n"]), m["outcome"])
        if not any(_close(m["mean"], g["estimate"]) and _close(m["sd"], g["sd"])
                   and g["outcome"] == "inconclusive" and (g["needed"], g["likelier"]) == said
                   for g in derived):
            problems.append(f"explanation: mean {m['mean']}, sd {m['sd']} and "
                            f"{m['n'] or 'no'} seeds ({m['outcome']}) match no inconclusive "
                            f"record's per-seed values")
    problems += [f"Claim {c}{' (' + label + ')' if label else ''}: a verdict line with no "
                 f"record" for c, label in lines if (c, label) not in recorded and kept]
    return problems


def _read(path):
    return json.loads(path.read_text())


def test_every_committed_notebook_is_checked():
    # five chapters in each part; a glob that found nothing would make the test below vacuous
    assert len([p for p in NOTEBOOKS if p.parent == BOOK]) >= 5
    assert len([p for p in NOTEBOOKS if p.parent == BOOK / "gpu"]) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(BOOK).as_posix())
def test_committed_verdict_follows_from_what_the_notebook_printed(path):
    assert verdict_problems(_read(path)) == []


def check_records(path, nb: dict, book=BOOK) -> None:
    """The notebook's records re-derived; a chapter of the book (``book``, the default
    profile) without one fails, a gpu notebook without one is listed as a skip by name."""
    if not notebook_records(nb):
        assert path.parent != book, f"{path.name}: no verdict record (posinfo.verdict.show)"
        pytest.skip(f"{path.relative_to(book)}: first edition, no verdict record; "
                    f"rerun by python -m posinfo.tools.gpu_book to keep one")
    assert record_problems(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(BOOK).as_posix())
def test_committed_verdict_is_rederived_from_its_per_seed_values(path):
    check_records(path, _read(path))


def _edit_verdict(nb: dict, old: str, new: str) -> dict:
    """A copy of a notebook with the first ``old`` in its verdict lines edited by hand."""
    nb = json.loads(json.dumps(nb))
    for cell in _code_cells(nb):
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", ""))
            if VERDICT_LINE.search(text) and old in text:
                out["text"] = text.replace(old, new, 1)
                return nb
    raise AssertionError(f"{old!r} not found in a verdict line")


def _other_outcome(outcome: str) -> str:
    """An outcome other than ``outcome`` (what a hand edit, or ``decide`` always saying one
    thing, would print)."""
    return "holds" if outcome != "holds" else "does not hold"


def hand_edits(nb: dict) -> dict:
    """{name: (old, new, complaint)}: hand edits of the notebook's verdict lines, each built
    from what the notebook itself recorded and printed (its records and its settings table),
    and the complaint each must raise."""
    main, control = notebook_records(nb)
    line, control_line = _line(nb).group(0), _line(nb, "control").group(0)
    settings = printed_settings(nb)
    rule = f"needs {main['direction']} {signed(main['threshold'])}"
    moved = f"needs {main['direction']} {signed(main['threshold'] + 0.04)}"
    flipped = "<" if control["direction"] == ">" else ">"
    control_rule = f"needs {control['direction']} {signed(control['threshold'])}"
    flipped_outcome = decide(Estimate(control["estimate"], control["low"], control["high"],
                                      control["n"], control["level"], control["sd"]),
                             Rule(control["statistic"], control["threshold"], flipped))
    # a direction edit the outcome survives would be caught by nothing: the fixture must not
    assert flipped_outcome != control["outcome"]
    level = round(100 * main["level"])
    return {
        # an outcome the interval does not give (decide always saying one thing would)
        "outcome-main": (line, line.replace(f"{main['outcome']} —",
                                            f"{_other_outcome(main['outcome'])} —"),
                         f"prints {_other_outcome(main['outcome'])!r}, but the rule"),
        "outcome-control": (control_line, control_line.replace(
            f"{control['outcome']} —", f"{_other_outcome(control['outcome'])} —"),
            f"prints {_other_outcome(control['outcome'])!r}, but the rule"),
        # a minimal effect other than the chapter's (the outcome may well be the same)
        "min-effect": (line, line.replace(rule, moved), f"but the settings say {rule[6:]}"),
        "direction": (control_line, control_line.replace(
            control_rule, f"needs {flipped} {signed(control['threshold'])}"),
            f"gives [{flipped_outcome!r}]"),
        # a seed count other than the run's
        "n": (line, line.replace(f"n = {main['n']}", f"n = {main['n'] + 1}"),
              f"n_seeds = {settings['n_seeds']}"),
        # a number outside its own interval
        "estimate": (line, line.replace(f"= {signed(main['estimate'])} [",
                                        f"= {signed(main['high'] + 1)} ["),
                     "outside its interval"),
        # a level other than the settings' confidence
        "level": (line, line.replace(f"[{level}% CI", f"[{level - 5}% CI"),
                  f"confidence {settings['confidence']}"),
    }


HAND_EDITS = ["outcome-main", "outcome-control", "min-effect", "direction", "n", "estimate",
              "level"]


@pytest.mark.parametrize("name", HAND_EDITS)
def test_a_verdict_line_edited_by_hand_is_caught(recorded_notebook, name):
    assert verdict_problems(recorded_notebook) == []  # the notebook as run passes...
    edits = hand_edits(recorded_notebook)
    assert sorted(edits) == sorted(HAND_EDITS)
    old, new, complaint = edits[name]
    assert new != old, f"{name}: the edit changed nothing in {old!r}"
    problems = verdict_problems(_edit_verdict(recorded_notebook, old, new))
    assert any(complaint in p for p in problems), problems  # ...the edited copy does not


def test_several_verdict_lines_are_each_checked(recorded_notebook):
    # each line of a chapter with a control is checked on its own
    nb = json.loads(json.dumps(recorded_notebook))
    line = _line(nb, "control").group(0)
    recorded = notebook_records(nb)[1]["outcome"]
    other = _other_outcome(recorded)
    cell = next(c for c in _code_cells(nb) if VERDICT_LINE.search(_stdout(c)))
    cell["outputs"].append({"name": "stdout", "output_type": "stream",
                            "text": line.replace(f"{recorded} —", f"{other} —") + "\n"})
    problems = verdict_problems(nb)
    assert len(problems) == 1 and f"prints {other!r}" in problems[0], problems


def test_rounding_only_forgives_an_interval_end_within_half_a_unit_of_the_threshold():
    rule = Rule("x", 0.5)
    # printed low +0.500 may be 0.5004 (holds) or 0.4996 (inconclusive)
    assert possible_outcomes(0.5, 0.7, rule) == {"holds", "inconclusive"}
    assert possible_outcomes(0.502, 0.7, rule) == {"holds"}
    assert possible_outcomes(-math.inf, math.inf, rule) == {"inconclusive"}
    assert possible_outcomes(0.4, 0.6, rule) == {"inconclusive"}
    assert possible_outcomes(0.1, 0.499, rule) == {"does not hold"}
    assert possible_outcomes(0.1, 0.5, rule) == {"does not hold", "inconclusive"}
    assert set(OUTCOMES) == possible_outcomes(0.5, 0.5, rule)


def test_a_labelled_second_verdict_is_checked_and_an_unparsable_one_is_reported(
        recorded_notebook):
    nb = json.loads(json.dumps(recorded_notebook))
    line = _line(nb).group(0)
    cell = next(c for c in _code_cells(nb) if VERDICT_LINE.search(_stdout(c)))
    cell["outputs"].append({"name": "stdout", "output_type": "stream",
                            "text": line.replace(" — ", " - ") + "\n"})
    assert verdict_problems(nb) == [
        f"not in the verdict line's form: {line.replace(' — ', ' - ')!r}"]
    control = _line(nb, "control")
    n = int(control["n"])
    assert [p for p in verdict_problems(_edit_verdict(
        recorded_notebook, control.group(0), control.group(0).replace(f"n = {n}",
                                                                      f"n = {n - 1}")))
        if p.startswith(f"Claim {control['claim']} (control)")]


# ---- a notebook that keeps its records, executed here: what the book's chapters do ---------
# Its main verdict judges two paired arms, its control one arm; the tests derive what they
# expect from these values (or from the notebook's own records), never from a printed number.
TREATED, BASELINE = {201: 0.31, 200: 0.12, 202: 0.2}, {200: 0.1, 201: 0.2, 202: 0.15}
CONTROL = {200: 0.5, 201: 0.7, 202: 0.6}
RECORDED_SOURCE = rf'''
from posinfo.tables import format_table
from posinfo.interval import Rule
from posinfo.verdict import judge, show
print("profile     smoke\nn_seeds     3\nconfidence  0.95")
rule = Rule("gain", 0.05)
verdict = judge(3, rule, {TREATED!r}, control={BASELINE!r}, arms=("treated", "baseline"))
control = judge(3, Rule("control gain", 0.0), {CONTROL!r}, label="control")
print(format_table({{"gain (primary)": {{"estimate [CI]": verdict.estimate}},
                    "control (primary)": {{"estimate [CI]": control.estimate}}}}))
'''


@pytest.fixture(scope="module")
def recorded_notebook(tmp_path_factory):
    """A notebook executed in a kernel, whose verdicts ``show`` printed and recorded."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(RECORDED_SOURCE),
                nbformat.v4.new_code_cell("show(verdict)\nshow(control)"),
                nbformat.v4.new_code_cell("print(verdict.explanation())\n"
                                          "print(control.explanation())")]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return json.loads(nbformat.writes(nb))


def test_a_recorded_notebook_is_rederived_from_its_per_seed_values(recorded_notebook):
    nb = recorded_notebook
    assert [(r["claim"], r["label"]) for r in notebook_records(nb)] == [(3, ""), (3, "control")]
    assert record_problems(nb) == [] and verdict_problems(nb) == []
    # the independent re-derivation agrees with the values the notebook was given
    differences = [TREATED[s] - BASELINE[s] for s in sorted(TREATED)]
    got = rederive(notebook_records(nb)[0])
    assert got["estimate"] == pytest.approx(np.mean(differences))
    assert got["n"] == len(differences)
    assert got["sd"] == pytest.approx(np.std(differences, ddof=1))
    # the main verdict is inconclusive at these values: its explanation is checked
    assert got["outcome"] == "inconclusive" and got["needed"] is not None
    assert EXPLAINED.search("".join(_stdout(c) for c in _code_cells(nb)))


def _edit_stdout(nb, old, new):
    nb = json.loads(json.dumps(nb))
    edited = 0
    for cell in _code_cells(nb):
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", ""))
            if old in text:
                out["text"], edited = text.replace(old, new, 1), edited + 1
    assert edited == 1, old
    return nb


def _swap_likelier(nb):
    """A copy of ``nb`` whose explanation names the other decided outcome as the likelier."""
    said = next(m["outcome"] for c in _code_cells(nb)
                for m in EXPLAINED.finditer(_stdout(c)) if m["outcome"])
    return _edit_stdout(nb, f"most likely {said!r}", f"most likely {_other_outcome(said)!r}")


def _line(nb, label=""):
    return next(m for c in _code_cells(nb) for m in VERDICT_LINE.finditer(_stdout(c))
                if (m["label"] or "") == label)


def test_a_self_consistent_forged_line_is_caught(recorded_notebook):
    """The issue's forgery: a line rewritten to a different, self-consistent verdict (outcome
    agreeing with its interval, estimate inside it) passes every check of the line alone."""
    line = _line(recorded_notebook)
    record = notebook_records(recorded_notebook)[0]
    # a narrow interval on the side of the threshold that gives another outcome
    outcome = _other_outcome(record["outcome"])
    above = (outcome == "holds") == (record["direction"] == ">")
    value = record["threshold"] + (0.03 if above else -0.03)
    forged_line = (f"Claim {line['claim']}: {outcome} — {line['statistic']} = {signed(value)} "
                   f"[95% CI {signed(value - 0.01)}, {signed(value + 0.01)}]; "
                   f"needs {line['rule']}; n = {line['n']}")
    forged = _edit_stdout(recorded_notebook, line.group(0), forged_line)
    assert verdict_problems(forged) == []  # the line agrees with itself...
    problems = record_problems(forged)     # ...but not with its per-seed values
    assert any(f"the line prints estimate {signed(value)}" in p for p in problems), problems
    assert any(f"the line prints {outcome!r}" in p for p in problems), problems


@pytest.mark.parametrize("edit,complaint", [
    # the (primary) row's interval forged
    (lambda nb: _edit_stdout(nb, "gain (primary)", "gain (primary) +9.000 [95% CI +8.000, "
                             "+10.000] was"), "the (primary) row prints"),
    # the explanation's sd forged
    (lambda nb: _edit_stdout(nb, ", sd ", ", sd 9"), "explanation: mean"),
    # the explanation's seed count, or its likelier outcome, forged
    (lambda nb: _edit_stdout(nb, " seeds would give", "0 seeds would give"),
     "explanation: mean"),
    (lambda nb: _swap_likelier(nb), "explanation: mean"),
    # the old half-width wording
    (lambda nb: _edit_stdout(nb, "would give an 80% chance of a decided outcome", "would "
                             "decide it"), "explanation not in the power form"),
    # a per-seed value changed in the record: the line no longer follows from it
    (lambda nb: _set_record(nb, 0, lambda r: r["per_seed"].update({"200": 0.5})),
     "per-seed value is not treated - baseline"),
    # a seed dropped from the record (and its arms)
    (lambda nb: _set_record(nb, 0, lambda r: [d.pop("202") for d in (
        r["per_seed"], r["arms"]["treated"], r["arms"]["control"])]), "n = 3 for 2"),
    # the arms swapped: every difference changes sign
    (lambda nb: _set_record(nb, 0, lambda r: r["arms"].update(
        treated=r["arms"]["control"], control=r["arms"]["treated"])),
     "per-seed value is not treated - baseline"),
    # a record removed: its line and primary row stand alone
    (lambda nb: _set_record(nb, 1, None), "a verdict line with no record"),
], ids=["primary-row", "explanation-sd", "explanation-seeds", "explanation-outcome",
        "explanation-old-wording", "per-seed-value", "dropped-seed", "swapped-arms",
        "missing-record"])
def test_a_record_or_its_printing_edited_is_caught(recorded_notebook, edit, complaint):
    problems = record_problems(edit(recorded_notebook))
    assert any(complaint in p for p in problems), problems


def _set_record(nb, index, change):
    """A copy of ``nb`` with its index-th record changed in place by ``change`` (or removed
    with its output, ``change=None``)."""
    nb = json.loads(json.dumps(nb))
    outputs = [(cell, out) for cell in _code_cells(nb) for out in cell.get("outputs", [])
               if RECORD_MIME in out.get("metadata", {})]
    cell, out = outputs[index]
    if change is None:
        cell["outputs"].remove(out)
    else:
        change(out["metadata"][RECORD_MIME])
    return nb


def test_a_chapter_of_the_book_without_a_record_fails_and_a_gpu_one_is_listed(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": "", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": "Claim 1: holds — x = +0.800 "
         "[95% CI +0.700, +0.900]; needs > +0.500; n = 3\n"}]}]}
    (tmp_path / "gpu").mkdir()
    with pytest.raises(AssertionError, match="01_x.ipynb: no verdict record"):
        check_records(tmp_path / "01_x.ipynb", nb, book=tmp_path)
    with pytest.raises(pytest.skip.Exception, match="gpu/01_x.ipynb: first edition"):
        check_records(tmp_path / "gpu" / "01_x.ipynb", nb, book=tmp_path)
