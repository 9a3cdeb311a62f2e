"""One printer for every table of numbers a chapter shows, so no chapter aligns f-strings;
the same printing for the numbers a chapter glues into its prose (``glue_values``).

A table is ``{row label: {column: value}}``. Floats print with a fixed number of decimals,
anything with a ``text()`` method (a verdict's Estimate) prints as that text, and everything
else as ``str``. Columns are the union of the rows' keys in first-seen order; a missing
value prints as an empty cell.

Used by every chapter.
"""
from __future__ import annotations

from numbers import Integral, Real


def format_value(value, digits: int = 3) -> str:
    if hasattr(value, "text"):
        return value.text()
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        return f"{float(value):.{digits}f}"
    return str(value)


def format_table(rows: dict, index: str = "", digits: int = 3) -> str:
    """Rows of labelled values as aligned plain text (label column left, values right)."""
    if not rows:
        raise ValueError("format_table needs at least one row, got none")
    columns = list(dict.fromkeys(c for row in rows.values() for c in row))
    cells = [[str(label)] + [format_value(row.get(c), digits) if c in row else ""
                             for c in columns] for label, row in rows.items()]
    header = [index] + [str(c) for c in columns]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]

    def line(items):
        return "  ".join([items[0].ljust(widths[0])]
                         + [s.rjust(w) for s, w in zip(items[1:], widths[1:])]).rstrip()
    return "\n".join([line(header), *map(line, cells)])


def compared(new, old, words=("rose", "fell", "did not move"), decimals: int = 3) -> str:
    """``words[0]`` if ``new``, rounded to ``decimals`` as the page prints it, is above
    ``old``, ``words[1]`` if below, ``words[2]`` if the two print alike: a word for the prose
    that cannot contradict the numbers printed beside it."""
    new, old = round(float(new), decimals), round(float(old), decimals)
    return words[2] if new == old else words[0] if new > old else words[1]


def glue_values(**values) -> None:
    """Glue each value, printed as a table cell would print it, under its name, for
    ``{glue:text}`` in the chapter's prose; nothing is displayed where it is called.
    Name the keys in full (``glue_values(ch1_accuracy=...)``), so that a grep for a key
    in the prose finds where it is glued.
    One call gathers a cell's numbers (every chapter); a pre-formatted string (``"85%"``)
    is glued as it is."""
    from myst_nb import glue  # the book's renderer: imported only where a chapter glues

    for name, value in values.items():
        glue(name, format_value(value), display=False)
