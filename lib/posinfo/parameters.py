"""A chapter's ``parameters`` cell, resolved into its settings in one call (every chapter).

    settings = settings_from("gap_keeps_position", globals())

passes exactly the names the chapter's parameters cell assigns, as the runner reads them
(``run.parameters_cell``): the runner, ``--list`` and the chapter share one list of names. A
name in the cell that is not a knob of the chapter is refused (``settings.chapter_settings``),
before any data is built or any model trained. Nothing in the library imports this module: it
reads the chapters' sources through the runner, at the top of the import graph.

Used by every chapter's settings cell.
"""
from __future__ import annotations

from . import run
from .settings import Settings, chapter_settings, default_profile


def settings_from(chapter: str, namespace: dict) -> Settings:
    """The chapter's settings from the values ``namespace`` (the notebook's ``globals()``)
    holds for each name of its parameters cell; ``profile`` picks the profile table."""
    sources = run.chapter_sources()
    if chapter not in sources:
        raise ValueError(f"chapter must be one of {sorted(sources)}, got {chapter!r}")
    names = list(run.parameters_cell(sources[chapter]))
    unset = [name for name in names if name not in namespace]
    if unset:
        raise ValueError(f"chapter {chapter!r}: parameter(s) {unset} of its parameters cell "
                         f"are not set; run the parameters cell first")
    values = {name: namespace[name] for name in names}
    profile = values.pop("profile", default_profile())
    return chapter_settings(chapter, profile, **values)
