"""Every ``python -m posinfo.run ...`` written for a reader runs.

The commands are extracted from the README, the book's pages, the chapters' exercises,
data/README.md and the runner's own help, and each is validated by the runner itself (its
argument parser, parameter names, values and cross-checks, environment), without starting a
kernel, at the profile it names (``default`` when it names none). A documented command the
runner refuses fails here, with the file and line it came from.
"""
import re
import shlex

import pytest

from posinfo import run

SOURCES = [run.REPO / "README.md", run.REPO / "data" / "README.md",
           run.REPO / "lib" / "posinfo" / "run.py",  # its docstring: the runner's --help
           *sorted(run.BOOK.glob("*.md")), *sorted(run.BOOK.glob("[0-9][0-9]_*.py"))]


def _reader_text(path):
    """What a reader sees: a page, a chapter (prose and exercises), a module's docstring."""
    return run.__doc__ if path.name == "run.py" else path.read_text()
COMMAND = re.compile(r"python3? -m posinfo\.run\b(?P<rest>.*)$")


def documented_commands():
    """[(where, argv)] of every posinfo.run command with arguments in SOURCES. A command ends
    at a closing backtick or a shell comment; a trailing backslash continues it. A bare
    ``python -m posinfo.run`` in prose names the program and is not a command."""
    found = []
    for path in SOURCES:
        lines = _reader_text(path).splitlines()
        for number, line in enumerate(lines, 1):
            match = COMMAND.search(line)
            if not match:
                continue
            rest, following = match["rest"], number
            while rest.rstrip().endswith("\\") and following < len(lines):
                rest = rest.rstrip()[:-1] + " " + lines[following].lstrip("# ")
                following += 1
            rest = rest.split("`", 1)[0]
            rest = re.split(r"\s#", rest, 1)[0]
            argv = shlex.split(rest)
            if argv:
                found.append((f"{path.relative_to(run.REPO).as_posix()}:{number}", argv))
    return found


COMMANDS = documented_commands()


def test_the_extraction_finds_the_commands_it_should():
    # a broken extractor would make the test below pass on nothing
    where = {w.split(":")[0] for w, _ in COMMANDS}
    assert {"README.md", "book/reproduce.md", "book/intro.md", "book/01_gap_keeps_position.py",
            "book/05_region_attack.py", "lib/posinfo/run.py"} <= where
    assert len(COMMANDS) >= 30
    chapter2 = [argv for w, argv in COMMANDS if w.startswith("book/02_")]
    assert ["channel_order", "--out", "runs/long", "-p", "epochs", "20", "-p", "placements",
            "(5,)"] in chapter2  # shell quoting undone, as the shell would


@pytest.fixture
def no_kernel(monkeypatch, tmp_path):
    """The runner up to, not including, the kernel; a machine without the paper profile's
    data (a property of the machine, tested in test_run_safety) is not the document's fault."""
    started = []
    monkeypatch.setattr(run, "execute", lambda *args, **kwargs: started.append(args))
    monkeypatch.setattr(run, "missing_data", lambda settings: [])
    monkeypatch.delenv("POSINFO_PROFILE", raising=False)  # make test sets smoke; docs mean default
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "cache"))
    return started


def _with_own_out(argv, tmp_path):
    """The command with its --out moved under tmp_path (runs/ of the clone stays untouched,
    and a folder left by an earlier run of the reader's would be refused without --replace)."""
    argv = list(argv)
    if "--out" in argv:
        i = argv.index("--out") + 1
        argv[i] = str(tmp_path / "out" / argv[i].strip("/"))
    return argv


@pytest.mark.parametrize("where,argv", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_a_documented_command_is_accepted_by_the_runner(where, argv, tmp_path, no_kernel, capsys):
    code = run.main(_with_own_out(argv, tmp_path))
    err = capsys.readouterr().err
    assert code == 0, f"{where}: python -m posinfo.run {shlex.join(argv)}\n{err}"
    if "--list" not in argv:
        assert no_kernel, f"{where}: accepted but nothing would run"


def test_a_refused_command_fails_the_check(tmp_path, no_kernel, capsys):
    # the two commands the issue found refused, as they were documented
    for argv in (["channel_order", "--out", "runs/paper100", "-p", "profile", "paper",
                  "-p", "dataset", "cifar100"],
                 ["1", "--out", "runs/ex1", "-p", "padding", "circular",
                  "-p", "image_size", "20"]):
        assert run.main(_with_own_out(argv, tmp_path)) == 1
    assert no_kernel == []


def documented_distributed_commands():
    """[(where, argv)] of every ``-m posinfo.tools.distributed`` command in the Reproduce page
    and the module's docstring (its --help), continuation lines joined; prose that elides
    the arguments (``...``) is no command."""
    from posinfo.tools import distributed

    found = []
    for where, text in (("book/reproduce.md", (run.BOOK / "reproduce.md").read_text()),
                        ("posinfo.tools.distributed", distributed.__doc__)):
        joined = re.sub(r"\\\n\s*", " ", text)
        for line in joined.splitlines():
            match = re.search(r"-m posinfo\.tools\.distributed\b(?P<rest>[^`]*)", line)
            argv = shlex.split(match["rest"]) if match else []
            if argv and "..." not in argv:  # "torchrun ... -m ... --compile": prose
                found.append((where, argv))
    return found


DISTRIBUTED = documented_distributed_commands()


class _WouldTrain(Exception):
    pass


@pytest.mark.parametrize("where,argv", DISTRIBUTED, ids=[w for w, _ in DISTRIBUTED])
def test_a_documented_distributed_command_reaches_the_process_group(where, argv, tmp_path,
                                                                    monkeypatch):
    # its documented --seed 1 was refused by its own parser
    from posinfo.tools import distributed

    def join(*args, **kwargs):
        raise _WouldTrain

    monkeypatch.setattr(distributed.dist, "init_process_group", join)
    monkeypatch.setattr(distributed, "check_data", lambda settings: None)  # the machine's
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(_WouldTrain):
        distributed.main(argv)


def test_the_distributed_extraction_finds_the_seed_command():
    assert len(DISTRIBUTED) >= 3
    assert any(argv[-2:] == ["--seed", "1"] for _, argv in DISTRIBUTED)
