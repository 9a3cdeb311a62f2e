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
"""
import ast
import json
import math
import re
import shutil

import pytest

from posinfo.run import BOOK
from posinfo.verdict import OUTCOMES, Estimate, Rule, VERDICT_LINE, decide, signed

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


def _read(path):
    return json.loads(path.read_text())


def test_every_committed_notebook_is_checked():
    # five chapters in each part; a glob that found nothing would make the test below vacuous
    assert len([p for p in NOTEBOOKS if p.parent == BOOK]) >= 5
    assert len([p for p in NOTEBOOKS if p.parent == BOOK / "gpu"]) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(BOOK).as_posix())
def test_committed_verdict_follows_from_what_the_notebook_printed(path):
    assert verdict_problems(_read(path)) == []


def _edit_verdict(path, tmp_path, old, new):
    """A copy of a committed notebook with one verdict line edited by hand."""
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    nb = _read(copy)
    edited = 0
    for cell in _code_cells(nb):
        for out in cell.get("outputs", []):
            text = "".join(out.get("text", ""))
            if VERDICT_LINE.search(text) and old in text:
                out["text"] = text.replace(old, new, 1)
                edited += 1
    assert edited == 1, f"{old!r} not found in the verdict of {path.name}"
    copy.write_text(json.dumps(nb))
    return _read(copy)


CH1, CH3 = BOOK / "01_gap_keeps_position.ipynb", BOOK / "03_augshift.ipynb"


@pytest.mark.parametrize("path,old,new,complaint", [
    # an outcome the interval does not give (decide always saying "holds" would print this)
    (CH1, "holds —", "does not hold —", "gives ['holds']"),
    (CH3, "inconclusive —", "holds —", "gives ['inconclusive']"),
    # a minimal effect other than the chapter's (the outcome would still be "holds")
    (CH1, "needs > +0.500", "needs > +0.100", "but the settings say > +0.500"),
    (CH1, "needs > +0.500", "needs < +0.500", "gives"),
    # a seed count other than the run's
    (CH1, "n = 3", "n = 4", "n_seeds = 3"),
    # a number outside its own interval
    (CH1, "= +0.889 [", "= +0.950 [", "outside its interval"),
    # a level other than the settings' confidence
    (CH3, "[95% CI", "[90% CI", "confidence 0.95"),
], ids=["outcome-holds", "outcome-inconclusive", "min-effect", "direction", "n", "estimate",
        "level"])
def test_a_verdict_line_edited_by_hand_is_caught(path, old, new, complaint, tmp_path):
    assert verdict_problems(_read(path)) == []  # the committed notebook passes...
    problems = verdict_problems(_edit_verdict(path, tmp_path, old, new))
    assert any(complaint in p for p in problems), problems  # ...the edited copy does not


def test_several_verdict_lines_are_each_checked(tmp_path):
    # chapter 5 will print a second line for a control: each line is re-derived on its own
    nb = _read(CH1)
    cell = next(c for c in _code_cells(nb) if VERDICT_LINE.search(_stdout(c)))
    line = VERDICT_LINE.search(_stdout(cell)).group(0)
    cell["outputs"].append({"name": "stdout", "output_type": "stream",
                            "text": line.replace("holds —", "inconclusive —") + "\n"})
    problems = verdict_problems(nb)
    assert len(problems) == 1 and "prints 'inconclusive'" in problems[0], problems


def test_rounding_only_forgives_an_interval_end_within_half_a_unit_of_the_threshold():
    rule = Rule("x", 0.5)
    # printed low +0.500 may be 0.5004 (holds) or 0.4996 (inconclusive)
    assert possible_outcomes(0.5, 0.7, rule) == {"holds", "inconclusive"}
    assert possible_outcomes(0.502, 0.7, rule) == {"holds"}
    assert possible_outcomes(-math.inf, math.inf, rule) == {"inconclusive"}
    assert set(OUTCOMES) >= possible_outcomes(0.4, 0.6, rule)


def test_a_labelled_second_verdict_is_checked_and_an_unparsable_one_is_reported():
    nb = _read(CH1)
    cell = next(c for c in _code_cells(nb) if VERDICT_LINE.search(_stdout(c)))
    line = VERDICT_LINE.search(_stdout(cell)).group(0)
    labelled = line.replace("Claim 1:", "Claim 1 (control):")
    cell["outputs"].append({"name": "stdout", "output_type": "stream",
                            "text": labelled + "\n" + line.replace(" — ", " - ") + "\n"})
    problems = verdict_problems(nb)
    assert problems == [f"not in the verdict line's form: {line.replace(' — ', ' - ')!r}"]
    cell["outputs"][-1]["text"] = labelled.replace("n = 3", "n = 2") + "\n"
    assert [p for p in verdict_problems(nb) if p.startswith("Claim 1 (control)")], \
        verdict_problems(nb)
