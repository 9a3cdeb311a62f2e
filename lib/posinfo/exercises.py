"""Check the reader's code in a chapter's write-it-yourself exercise against the library's.

Each chapter has an exercise where the reader writes a small piece of the method (global
average pooling, the channel shuffle, the flip ranking, ...). The page gives them a stub
that raises ``NotImplementedError``, then a check cell::

    print(check(my_gap, global_average_pool, [(features,)]))

``check`` calls the reader's function and the library's own on the same known inputs and
answers ``"matches"`` or ``"not yet (<why>)"``. The why never shows the library's result
(only the reader's own error or shape, or "values differ"), so the check says whether the
code is right without giving the answer away. It never raises for anything the reader's
function does: a page whose exercise is left unsolved executes like any other (nbval).
Errors of the library's function do raise: they are the page's bugs, not the reader's.

The conventions ``tests/test_exercise_solutions.py`` relies on, in a chapter's source:

- the stub is a code cell tagged ``exercise-stub``, the check a code cell tagged
  ``exercise-check`` that prints what ``check`` returns; the check cell builds its known
  input itself and needs nothing but the chapter's first code cell (its imports) and the
  stub, so the test can run it without running the chapter;
- the worked solution is a ```` ```python ```` block inside a markdown
  ```` ```{admonition} Solution ```` dropdown; it defines the stub's function again.

Used by every chapter's exercises.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch

MATCHES = "matches"
NOT_YET = "not yet"


def _as_array(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _differs(mine, reference, atol: float, rtol: float) -> str | None:
    """None when ``mine`` equals ``reference``, else why not, without the reference."""
    if mine is None:
        return "your function returned None"
    try:
        mine = _as_array(mine)
    except Exception as error:  # noqa: BLE001 (anything the reader returned)
        return f"your result is not an array: {type(error).__name__}"
    reference = _as_array(reference)
    if mine.shape != reference.shape:
        return f"your result has shape {tuple(mine.shape)}, which is not the library's"
    if not np.issubdtype(mine.dtype, np.number) and mine.dtype != bool:
        return f"your result holds {mine.dtype}, not numbers"
    if not np.allclose(mine.astype(float), reference.astype(float), atol=atol, rtol=rtol):
        return "values differ"
    return None


def check(reader_fn: Callable, reference_fn: Callable, inputs: Sequence[tuple], *,
          atol: float = 1e-5, rtol: float = 1e-5) -> str:
    """Call ``reader_fn(*args)`` and ``reference_fn(*args)`` for each argument tuple in
    ``inputs``; ``"matches"`` when every result has the library's shape and values (within
    ``atol`` and ``rtol``), else ``"not yet (<why>)"``, the reader's first failing call.

    Each function gets its own deep copy of the arguments, so a function that changes its
    input in place (or draws from a ``torch.Generator`` passed in) cannot change what the
    other one sees. Results may be tensors, arrays or anything ``numpy.asarray`` takes.
    """
    if isinstance(inputs, tuple) or not len(inputs):
        raise ValueError("inputs must be a non-empty list of argument tuples, "
                         "e.g. [(features,)]")
    for args in inputs:
        reference = reference_fn(*copy.deepcopy(tuple(args)))
        try:
            mine = reader_fn(*copy.deepcopy(tuple(args)))
        except NotImplementedError:
            return f"{NOT_YET} (your function is still the stub)"
        except Exception as error:  # noqa: BLE001 (the reader's code, any error)
            return f"{NOT_YET} (your function raised {type(error).__name__}: {error})"
        why = _differs(mine, reference, atol, rtol)
        if why is not None:
            return f"{NOT_YET} ({why})"
    return MATCHES
