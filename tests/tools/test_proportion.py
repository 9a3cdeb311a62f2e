"""Tooling in proportion (issue 29): ``posinfo.tools`` is at most a quarter of the library's
lines, no module of the library is over 400 lines, and no module reaches itself through its
imports, subpackages included (the GPU bench's two modules once imported each other).

Read from the source: every ``import`` anywhere in a module, those inside functions too,
since an import deferred into a function to dodge a circle is still a circle."""
import ast
import graphlib
from pathlib import Path

import pytest

import posinfo

PACKAGE = Path(posinfo.__file__).parent
TOOLS_SHARE_MAX, MODULE_LINES_MAX = 0.25, 400


def modules() -> dict[str, Path]:
    """{dotted name: path} of every module of the library ("posinfo.tools.bench" is its
    package's __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("posinfo",) + path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def imports_of(name: str, source: str, known) -> set[str]:
    """The library modules that the source of module ``name`` imports, wherever the import
    statement stands. A submodule's import of its own packages' __init__ (which Python runs
    first, for every module alike) is left out."""
    package = name if known[name].name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # import a.b.c: module a.b if c is a name
                target = target.rpartition(".")[0]
            if target and not name.startswith(target + ".") and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path.read_text(), known) for name, path in known.items()}


def test_the_reader_resolves_every_form_of_import_and_a_circle_is_found():
    known = modules()
    source = ("from ...canvas import CanvasTask\nfrom . import cpu\nfrom .gpu import header\n"
              "import posinfo.train\nfrom posinfo.tools import report\nimport numpy\n"
              "def f():\n    from ...run import REPO\n    from . import __doc__\n")
    assert imports_of("posinfo.tools.bench.gpu_check", source, known) == {
        "posinfo.canvas", "posinfo.tools.bench.cpu", "posinfo.tools.bench.gpu",
        "posinfo.train", "posinfo.tools.report", "posinfo.run"}
    # two modules that import each other, one of them inside a function: a circle
    graph = {"posinfo.tools.bench.gpu": imports_of(
                 "posinfo.tools.bench.gpu", "def f():\n    from .cpu import x\n", known),
             "posinfo.tools.bench.cpu": imports_of(
                 "posinfo.tools.bench.cpu", "from .gpu import y\n", known)}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()


def test_no_module_reaches_itself_through_its_imports():
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as circle:
        pytest.fail("import circle: " + " -> ".join(circle.args[1]))


def test_no_module_is_over_400_lines():
    long = {name: lines(path) for name, path in modules().items()
            if lines(path) > MODULE_LINES_MAX}
    assert not long, f"modules over {MODULE_LINES_MAX} lines: {long}"


def test_the_tools_are_at_most_a_quarter_of_the_library():
    counts = {name: lines(path) for name, path in modules().items()}
    tools = sum(n for name, n in counts.items() if name.startswith("posinfo.tools"))
    share = tools / sum(counts.values())
    assert tools > 0 and share <= TOOLS_SHARE_MAX, (
        f"posinfo.tools is {tools} of the library's {sum(counts.values())} lines "
        f"({share:.0%}); at most {TOOLS_SHARE_MAX:.0%}")
