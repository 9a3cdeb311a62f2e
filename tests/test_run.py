import ast
import json
import re
import textwrap

import pytest

from posinfo import run

BROKEN = textwrap.dedent('''\
    # %% [markdown]
    # A chapter that fails on purpose.

    # %% tags=["parameters"]
    profile = "smoke"
    seed = 0

    # %%
    x = 1

    # %%
    raise RuntimeError("boom in the third cell")
''')


def test_chapters_resolve_by_name_number_and_stem():
    key, path = run.resolve_chapter("gap_keeps_position")
    assert run.resolve_chapter("1") == run.resolve_chapter("01") == (key, path)
    assert run.resolve_chapter(path.stem) == (key, path)
    with pytest.raises(ValueError, match="chapter must be one of"):
        run.resolve_chapter("no_such_chapter")


def test_values_parse_as_python_literals():
    assert run.parse_value("4") == 4 and run.parse_value("0.5") == 0.5
    assert run.parse_value("(2, 2)") == (2, 2) and run.parse_value("circular") == "circular"


def test_bad_parameter_fails_before_any_kernel_starts(tmp_path, capsys):
    code = run.main(["gap_keeps_position", "--out", str(tmp_path), "-p", "padding", "mirror"])
    assert code == 1
    assert "padding must be one of" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was executed or written


def test_a_run_never_writes_into_book(capsys):
    assert run.main(["gap_keeps_position", "--out", str(run.BOOK)]) == 1
    assert "--out must not be" in capsys.readouterr().err


def test_a_failing_chapter_names_its_cell_and_keeps_the_notebook(tmp_path, monkeypatch, capsys):
    book = tmp_path / "book"
    book.mkdir()
    (book / "01_broken.py").write_text(BROKEN)
    monkeypatch.setattr(run, "BOOK", book)
    out = tmp_path / "out"
    assert run.main(["broken", "--out", str(out), "-p", "seed", "3"]) == 1
    err = capsys.readouterr().err
    assert "chapter '01_broken' failed in cell" in err and "boom in the third cell" in err
    # kept beside where a complete run would go, never under its name
    assert "kept at" in err and str(out / "01_broken.failed.ipynb") in err
    assert not (out / "01_broken.ipynb").exists()
    kept = json.loads((out / "01_broken.failed.ipynb").read_text())
    injected = [c for c in kept["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "seed = 3" in "".join(injected[0]["source"])
    assert not (book / "01_broken.ipynb").exists()


def test_compile_flag_reaches_the_kernel_and_a_bad_backend_is_refused_first(tmp_path, monkeypatch,
                                                                          capsys):
    book = tmp_path / "book"
    book.mkdir()
    (book / "01_env.py").write_text(textwrap.dedent('''\
        # %% tags=["parameters"]
        profile = "smoke"

        # %%
        import os
        print("compile backend:", os.environ.get("POSINFO_COMPILE"))
    '''))
    monkeypatch.setattr(run, "BOOK", book)
    with pytest.raises(SystemExit):  # argparse refuses it before anything runs
        run.main(["env", "--out", str(tmp_path / "bad"), "--compile", "turbo"])
    assert "invalid choice: 'turbo'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert run.main(["env", "--out", str(tmp_path / "out"), "--compile"]) == 0
    executed = json.loads((tmp_path / "out" / "01_env.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"]
                      for o in c.get("outputs", []))
    assert "compile backend: inductor" in printed


def test_parameters_cell_gives_each_value_and_its_comment(tmp_path):
    source = tmp_path / "01_demo.py"
    source.write_text(BROKEN.replace('seed = 0\n', 'seed = 0  # first seed\nwidth = None\n'))
    assert run.parameters_cell(source) == {"profile": ("smoke", ""), "seed": (0, "first seed"),
                                           "width": (None, "")}


def test_list_shows_values_per_profile_meaning_and_allowed_values(capsys):
    from posinfo.checks import CHECKS
    from posinfo.settings import CHAPTERS

    assert run.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    chapter = lines[lines.index(next(x for x in lines
                                     if x.startswith("01_gap_keeps_position"))):]
    start = next(i for i, x in enumerate(chapter) if x.startswith("  image_size"))
    block = [chapter[start]] + [x for x in chapter[start + 1:start + 3]
                                if x.startswith("      ")]
    text = "\n".join(block)
    # the meaning: the comment of the chapter's parameters cell
    source = (run.BOOK / "01_gap_keeps_position.py").read_text()
    meaning = next(x for x in source.splitlines()
                   if x.startswith("image_size = ")).split("# ")[1]
    assert block[0] == f"  image_size: {meaning}"
    value = CHAPTERS["gap_keeps_position"]["default"]["image_size"]
    assert f"default={value}" in text or f"{value} at every profile" in text, text
    assert f"allowed: {CHECKS['image_size'].allowed}" in text
    assert "an integer in [4, 512]" in text


def test_every_knob_says_which_values_it_allows():
    from posinfo.checks import CHECKS

    assert [name for name, check in CHECKS.items() if not getattr(check, "allowed", "")] == []


def _settings_call(source):
    """The chapter's one ``settings_from(...)`` call (posinfo.parameters; its AST)."""
    import ast
    calls = [node for node in ast.walk(ast.parse(source.read_text()))
             if isinstance(node, ast.Call)
             and getattr(node.func, "attr", getattr(node.func, "id", None))
             in ("chapter_settings", "settings_from")]
    assert len(calls) == 1, f"{source.name}: expected one settings call, found {len(calls)}"
    return calls[0]


@pytest.mark.parametrize("chapter", sorted(run.chapter_sources()))
def test_every_parameter_of_the_cell_reaches_the_chapters_settings(chapter):
    # The runner accepts exactly the parameters cell's names; each must then reach
    # chapter_settings, or a -p value would be accepted and silently dropped. settings_from
    # passes every name of the cell (tests/test_settings.py), given the chapter's own key and
    # its globals().
    source = run.chapter_sources()[chapter]
    call = _settings_call(source)
    assert getattr(call.func, "attr", getattr(call.func, "id", None)) == "settings_from", \
        f"{source.name}: resolve the settings with parameters.settings_from(chapter, globals())"
    key, namespace = (ast.literal_eval(call.args[0]), ast.unparse(call.args[1]))
    assert (key, namespace, call.keywords) == (chapter, "globals()", [])


@pytest.fixture
def no_kernel(monkeypatch):
    """run.execute replaced: a test fails, rather than starts a kernel, if a check is missing."""
    started = []
    monkeypatch.setattr(run, "execute", lambda *args, **kwargs: started.append(args))
    return started


def test_a_parameter_outside_the_parameters_cell_is_refused_before_any_kernel(tmp_path, capsys,
                                                                             no_kernel):
    # n_train is in the chapter's profile table but not in its parameters cell: papermill
    # would inject it and the chapter would never read it.
    assert run.main(["gap_keeps_position", "--out", str(tmp_path), "-p", "n_train", "64"]) == 1
    err = capsys.readouterr().err
    names = list(run.parameters_cell(run.chapter_sources()["gap_keeps_position"]))
    assert "no parameter(s) ['n_train']" in err and str(names) in err
    assert no_kernel == [] and not any(tmp_path.iterdir())
    # a name of the cell is accepted (and would run)
    assert run.main(["gap_keeps_position", "--out", str(tmp_path), "-p", "epochs", "1"]) == 0
    assert len(no_kernel) == 1 and no_kernel[0][3] == {"epochs": 1}


@pytest.mark.parametrize("where", ["book", "book/sub", "book/sub/deeper", "data", "data/x",
                                   "book/../data/y"])
def test_out_inside_book_or_data_is_refused(where, capsys, no_kernel):
    assert run.main(["gap_keeps_position", "--out", str(run.REPO / where)]) == 1
    err = capsys.readouterr().err
    assert "--out must not be" in err and "choose a folder of your own" in err
    assert no_kernel == []


def test_out_inside_a_symlink_to_book_is_refused(tmp_path, capsys, no_kernel):
    (tmp_path / "link").symlink_to(run.BOOK)
    assert run.main(["gap_keeps_position", "--out", str(tmp_path / "link" / "sub")]) == 1
    assert "--out must not be" in capsys.readouterr().err and no_kernel == []
    # a sibling whose name merely starts like book/ is fine
    assert run.check_out(run.REPO / "bookish") == (run.REPO / "bookish").resolve()


def test_list_shows_exactly_the_names_of_each_parameters_cell(capsys):
    assert run.main(["--list"]) == 0
    out = capsys.readouterr().out
    for chapter, source in run.chapter_sources().items():
        block = out.split(source.stem, 1)[1].split("\n", 1)[1].split("\n\n")[0]
        listed = [line.split(":")[0].strip() for line in block.splitlines()
                  if line.startswith("  ") and not line.startswith("      ")]
        assert listed == list(run.parameters_cell(source)), chapter


def test_an_injected_parameter_reaches_the_executed_chapters_settings(tmp_path):
    """End to end: a value given with -p is the value the chapter ran with (its settings
    table), not merely a value papermill injected. Chapter 5 at smoke is the cheapest run."""
    import nbformat

    out = tmp_path / "out"
    assert run.main(["region_attack", "--out", str(out), "-p", "profile", "smoke",
                     "-p", "region_channels", "5", "-p", "n_seeds", "2",
                     # a tuple: papermill would inject its string "(1, 2)" (run.execute)
                     "-p", "budgets", "(1, 2)"]) == 0
    nb = nbformat.read(out / "05_region_attack.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert re.search(r"^region_channels\s+5$", text, re.M)
    assert re.search(r"^budgets\s+\(1, 2\)$", text, re.M)
    assert re.search(r"^profile\s+smoke$", text, re.M)
    assert "N = 5 of " in text  # and the experiment used it
