"""The write-it-yourself exercises: the checker, and every chapter's stub and solution.

For each chapter with exercise cells (conventions in ``posinfo.exercises``), the chapter's
imports cell runs, then its stubs and check cells: every check must say "not yet". Then the
worked solutions from the Solution dropdowns run, and the checks again: every one must say
"matches". The chapter itself never runs (the check cells build their own known inputs).
"""
import contextlib
import io
import re
import textwrap

import jupytext
import numpy as np
import pytest
import torch

from posinfo.exercises import MATCHES, NOT_YET, check
from posinfo.run import chapter_sources

SOLUTION = re.compile(r"```\{admonition\} Solution.*?```python\n(.*?)```", re.S)


def _exercises(source):
    """The chapter's imports cell, stub cells, check cells and solutions' code."""
    cells = jupytext.read(source).cells
    code = [c for c in cells if c.cell_type == "code"]

    def tagged(tag):
        return [c.source for c in code if tag in c.metadata.get("tags", [])]

    solutions = [textwrap.dedent(block) for c in cells if c.cell_type == "markdown"
                 for block in SOLUTION.findall(c.source)]
    return code[0].source, tagged("exercise-stub"), tagged("exercise-check"), solutions


def _printed(sources, namespace):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for source in sources:
            exec(compile(source, "<exercise>", "exec"), namespace)
    return out.getvalue().splitlines()


CHAPTERS = [p for p in chapter_sources().values() if _exercises(p)[1]]


def test_every_chapter_asks_for_code():
    assert CHAPTERS == list(chapter_sources().values())


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_the_stub_is_not_yet_and_the_worked_solution_matches(source):
    imports, stubs, checks, solutions = _exercises(source)
    assert len(stubs) == len(checks) == len(solutions), (
        "each exercise: one stub cell, one check cell, one Solution dropdown")
    namespace = {}
    _printed([imports] + stubs, namespace)
    unsolved = _printed(checks, namespace)
    assert len(unsolved) == len(checks)
    assert all(line.startswith(NOT_YET) for line in unsolved), unsolved
    # the solution must *be* the stub filled in: same function names
    for stub, solution in zip(stubs, solutions):
        assert set(re.findall(r"^def (\w+)", stub, re.M)) <= set(
            re.findall(r"^def (\w+)", solution, re.M))
    _printed(solutions, namespace)
    assert _printed(checks, namespace) == [MATCHES] * len(checks)


def _mean_pool(x):
    return x.mean(dim=(-2, -1))


def test_check_says_matches_only_for_the_same_values_and_shape():
    x = torch.arange(24.0).reshape(1, 2, 3, 4)
    assert check(_mean_pool, _mean_pool, [(x,)]) == MATCHES
    assert check(lambda t: t.mean(dim=(-2, -1)).numpy(), _mean_pool, [(x,)]) == MATCHES
    assert check(lambda t: t.sum(dim=(-2, -1)), _mean_pool, [(x,)]) == "not yet (values differ)"
    kept = check(lambda t: t.mean(dim=(-2, -1), keepdim=True), _mean_pool, [(x,)])
    assert kept.startswith(NOT_YET) and "(1, 2, 1, 1)" in kept
    # the second input catches what the first lets through
    only_first = check(lambda t: torch.tensor([[5.5, 17.5]]), _mean_pool,
                       [(x,), (x + 1,)])
    assert only_first == "not yet (values differ)"


def test_check_reports_the_readers_failure_without_the_librarys_answer():
    x = torch.ones(2, 3, 4, 4)

    def stub(t):
        raise NotImplementedError

    def broken(t):
        return t.mean(dim=7)

    assert check(stub, _mean_pool, [(x,)]) == "not yet (your function is still the stub)"
    assert check(lambda t: None, _mean_pool, [(x,)]).startswith(NOT_YET)
    assert check(broken, _mean_pool, [(x,)]).startswith("not yet (your function raised")
    assert check(lambda t: "ones", _mean_pool, [(x,)]).startswith(NOT_YET)
    with pytest.raises(ValueError, match="inputs"):
        check(_mean_pool, _mean_pool, (x,))


def test_each_function_gets_its_own_copy_of_the_inputs():
    def zero_in_place(t):
        t.zero_()
        return np.zeros(len(t))

    x = torch.ones(3)
    assert check(zero_in_place, lambda t: t - 1, [(x,)]) == MATCHES
    assert torch.equal(x, torch.ones(3))
    draw = torch.Generator().manual_seed(0)
    assert check(lambda g: torch.rand(4, generator=g), lambda g: torch.rand(4, generator=g),
                 [(draw,)]) == MATCHES
