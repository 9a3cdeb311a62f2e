import json
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
    kept = json.loads((out / "01_broken.ipynb").read_text())
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
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert "compile backend: inductor" in printed
