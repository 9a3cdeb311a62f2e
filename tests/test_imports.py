"""The library's modules import one way: no module reaches itself through its imports.

Read from the source (every ``import`` anywhere in a module, those inside functions
included), not from ``sys.modules``: an import deferred into a function to dodge a
circular import is still a circle.
"""
import ast
from pathlib import Path

import posinfo

PACKAGE = Path(posinfo.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def imports_of(source: str, modules=MODULES) -> set[str]:
    """The package modules a module's source imports, wherever the import statement stands.

    ``from . import x`` names module ``x`` when there is one, else the package itself
    (``__init__``); importing a submodule runs the package's ``__init__`` first, an edge
    every module shares and that is left out.
    """
    found = set()

    def add(dotted: str, names=()):
        parts = dotted.split(".") if dotted else []
        if parts:
            found.add(parts[0])
        else:
            found.update(name if name in modules else "__init__" for name in names)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level == 1:
                add(node.module or "", names)
            elif node.level == 0 and node.module and node.module.split(".")[0] == "posinfo":
                add(node.module.partition(".")[2], names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                head, _, rest = alias.name.partition(".")
                if head == "posinfo":
                    found.add(rest.split(".")[0] if rest else "__init__")
    return found & set(modules)


def import_graph() -> dict[str, set[str]]:
    return {name: imports_of((PACKAGE / f"{name}.py").read_text()) - {name}
            for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (a -> b -> ... -> a) through every strongly connected group of modules."""
    found, done = [], set()
    for start in sorted(graph):
        if start in done:
            continue
        stack, path, on_path = [(start, iter(sorted(graph[start])))], [start], {start}
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                found.append(path[path.index(child):] + [child])
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return found


def test_the_reader_sees_imports_inside_functions_and_every_form():
    source = ("from .canvas import paste\n"
              "from . import cache, __version__\n"
              "import posinfo.models\n"
              "from posinfo.train import fit\n"
              "def f():\n"
              "    from .augshift import check_settings\n"
              "    if True:\n"
              "        import posinfo\n")
    assert imports_of(source) == {"canvas", "cache", "__init__", "models", "train", "augshift"}


def test_the_cycle_finder_finds_a_circle_and_passes_a_tree():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_library_imports_one_way():
    graph = import_graph()
    assert graph["settings"] or graph["train"]  # the reader found the package's imports
    found = cycles(graph)
    assert not found, "import circles in lib/posinfo: " + "; ".join(" -> ".join(c) for c in found)


def tools_imported_by(source: str) -> list[str]:
    """The import statements of a science module that reach into posinfo.tools."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level == 1 and (node.module or "").split(".")[0] == "tools" \
                    or node.level == 1 and not node.module and "tools" in names \
                    or node.level == 0 and (node.module or "").startswith("posinfo.tools") \
                    or node.level == 0 and node.module == "posinfo" and "tools" in names:
                found.append(f"line {node.lineno}")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}" for alias in node.names
                      if alias.name.startswith("posinfo.tools")]
    return found


def test_the_tools_finder_sees_every_form():
    for source in ("from .tools import report", "from . import tools", "import posinfo.tools",
                   "from posinfo.tools.bench import cpu", "from posinfo import tools",
                   "def f():\n    from .tools.report import VERDICT_LINE"):
        assert tools_imported_by(source), source
    assert not tools_imported_by("from .train import fit\nimport posinfo.run")


def test_science_never_imports_the_tools():
    """Arrows go one way: posinfo.tools imports the science modules, never the reverse."""
    found = {name: tools_imported_by((PACKAGE / f"{name}.py").read_text())
             for name in MODULES}
    assert not {k: v for k, v in found.items() if v}, found
    assert (PACKAGE / "tools").is_dir() and "tools" not in MODULES
