"""The shape of the code base, computed from the files on disk (standard library only).

* Imports: an AST walk over the first-party packages (module- and function-level imports,
  those under `if TYPE_CHECKING:` too; relative ones resolved) gives the import graph, which
  must have no cycles; `bot` must not import `cogs`; `bot` and `cogs` must not import the
  dev-only `tests`, `testkit` or `bench`; `bench` and `testkit` must not import `tests`.
* The test tree mirrors the code: tests/bot/story ↔ bot/story, and so on.

The graph helpers are plain functions so that they can be checked on a synthetic tree.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
CODE = ("bot", "cogs")  # what ships
DEV = ("testkit", "bench")  # dev-only helpers, importable from the tests
MIRRORED = (*CODE, *DEV)  # the folders of tests/


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    name: str  # the absolute name imported from (`a.b` for `from a.b import c`)
    candidates: tuple[str, ...]  # modules it may be, most specific first
    line: int


def is_package_dir(path: Path) -> bool:
    return path.is_dir() and (path / "__init__.py").is_file()


def discover_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of the given top-level packages: dotted name -> file. A package's
    `__init__.py` is the package itself (`bot/story/__init__.py` is `bot.story`)."""
    modules: dict[str, Path] = {}
    for package in packages:
        base = root / package
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_in(module: str, path: Path) -> list[Import]:
    """Every import statement in the file, wherever it is (functions, TYPE_CHECKING blocks),
    with relative imports made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, (alias.name,), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                if up > len(package):
                    continue  # beyond the top-level package: Python refuses it too
                base_parts = package[: len(package) - up]
                if node.module:
                    base_parts = [*base_parts, *node.module.split(".")]
                base = ".".join(base_parts)
            else:
                base = node.module or ""
            if not base:
                continue
            for alias in node.names:
                candidates = (base,) if alias.name == "*" else (f"{base}.{alias.name}", base)
                found.append(Import(module, base, candidates, node.lineno))
    return found


def all_imports(root: Path, packages: Iterable[str]) -> tuple[dict[str, Path], list[Import]]:
    modules = discover_modules(root, packages)
    imports = [imp for name, path in modules.items() for imp in imports_in(name, path)]
    return modules, imports


def resolve(imp: Import, modules: Mapping[str, Path]) -> str | None:
    """The first-party module an import is an edge to: `from a.b import c` is `a.b.c` when
    that is a module, else `a.b`; None for anything that is not one of `modules`."""
    return next((c for c in imp.candidates if c in modules), None)


def import_graph(modules: Mapping[str, Path], imports: Iterable[Import]
                 ) -> dict[str, dict[str, list[int]]]:
    """module -> {imported module -> the lines that import it}; no implicit edges to parent
    packages."""
    graph: dict[str, dict[str, list[int]]] = {name: {} for name in modules}
    for imp in imports:
        target = resolve(imp, modules)
        if target is not None:
            lines = graph.setdefault(imp.source, {}).setdefault(target, [])
            if imp.line not in lines:  # `from a import b, c` is one line
                lines.append(imp.line)
    return graph


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, and the modules that
    import themselves; each sorted, the list sorted (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    succ = {node: sorted(set(targets)) for node, targets in graph.items()}
    for targets in list(succ.values()):
        for t in targets:
            succ.setdefault(t, [])

    for start in sorted(succ):
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(succ[node]):
                work.append((node, i + 1))
                nxt = succ[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:  # done with node: pass its low-link up to its parent
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in succ[node]:
                    components.append(sorted(component))
    return sorted(components)


def describe_cycle(component: list[str], graph: Mapping[str, Mapping[str, list[int]]],
                   modules: Mapping[str, Path], root: Path) -> str:
    members = set(component)
    edges = [
        f"    {src} -> {dst}  ({modules[src].relative_to(root)}:"
        f"{','.join(map(str, graph[src][dst]))})"
        for src in component for dst in sorted(graph.get(src, {})) if dst in members
    ]
    head = " <-> ".join(component) if len(component) <= 2 else (
        f"{len(component)} modules: " + ", ".join(component))
    return head + "\n" + "\n".join(edges)


def forbidden_imports(imports: Iterable[Import], modules: Mapping[str, Path],
                      sources: Iterable[str], targets: Iterable[str], root: Path) -> list[str]:
    """The imports from a module under one of the top-level packages `sources` of anything
    under `targets` (whether that module exists or not)."""
    src, dst = set(sources), set(targets)
    return sorted(
        f"{imp.source} imports {resolve(imp, modules) or imp.name}"
        f" ({modules[imp.source].relative_to(root)}:{imp.line})"
        for imp in imports
        if imp.source.split(".")[0] in src and imp.name.split(".")[0] in dst
    )


# ----- the real tree ---------------------------------------------------------------------------


def test_first_party_packages_are_found() -> None:
    modules, imports = all_imports(ROOT, MIRRORED)
    for package in MIRRORED:
        assert package in modules, f"{package}/__init__.py not found"
    assert any(resolve(imp, modules) for imp in imports)


def test_no_import_cycles() -> None:
    modules, imports = all_imports(ROOT, MIRRORED)
    graph = import_graph(modules, imports)
    cycles = import_cycles({src: dsts.keys() for src, dsts in graph.items()})
    assert not cycles, "import cycles (module-, function- and TYPE_CHECKING-level imports):\n" + (
        "\n".join(describe_cycle(c, graph, modules, ROOT) for c in cycles))


def test_bot_does_not_import_cogs() -> None:
    modules, imports = all_imports(ROOT, CODE)
    bad = forbidden_imports(imports, modules, ["bot"], ["cogs"], ROOT)
    assert not bad, "the dependency points cogs -> bot, never back:\n" + "\n".join(bad)


def test_shipped_code_does_not_import_dev_code() -> None:
    modules, imports = all_imports(ROOT, CODE)
    bad = forbidden_imports(imports, modules, CODE, ["tests", *DEV], ROOT)
    assert not bad, "bot/ and cogs/ must not import tests, testkit or bench:\n" + "\n".join(bad)


def test_dev_helpers_do_not_import_tests() -> None:
    modules, imports = all_imports(ROOT, DEV)
    bad = forbidden_imports(imports, modules, DEV, ["tests"], ROOT)
    assert not bad, "bench/ and testkit/ must not import tests:\n" + "\n".join(bad)


def test_tests_have_only_the_mirrored_folders() -> None:
    folders = {p.name for p in TESTS.iterdir()
               if p.is_dir() and p.name != "__pycache__" and not p.name.startswith(".")}
    extra = sorted(folders - set(MIRRORED))
    assert not extra, f"tests/ may only hold {', '.join(MIRRORED)}; also found: {extra}"
    missing_code = sorted(f"tests/{name} (no {name}/__init__.py)"
                          for name in folders if not is_package_dir(ROOT / name))
    assert not missing_code, f"test folders without their package: {missing_code}"


def test_test_tree_mirrors_the_packages() -> None:
    orphans = []
    for top in MIRRORED:
        base = TESTS / top
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.rglob("*") if p.is_dir()):
            rel = folder.relative_to(TESTS)
            if "__pycache__" in rel.parts or any(part.startswith(".") for part in rel.parts):
                continue
            if not is_package_dir(ROOT / rel):
                orphans.append(f"tests/{rel.as_posix()} -> no package {rel.as_posix()}/")
    assert not orphans, "every test folder mirrors a package folder (with __init__.py):\n" + (
        "\n".join(orphans))


# ----- the checker itself, on a synthetic tree -------------------------------------------------


def write(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


SYNTHETIC = {
    "app/__init__.py": "from app import util\n",
    # a <-> b through a function-level import one way and a TYPE_CHECKING one the other
    "app/a.py": "import os\n\ndef f():\n    from app import b\n    return b\n",
    "app/b.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from . import a\n"
    ),
    "app/util.py": "import json\nfrom app.a import f\nfrom app.sub import deep as _d\n",
    "app/selfish.py": "import app.selfish\n",
    "app/sub/__init__.py": "from .. import util\nfrom .deep import thing\n",
    "app/sub/deep.py": "from ..b import name\nfrom ...outside import x\nthing = 1\n",
    "app/__pycache__/ghost.py": "import app.a\n",
    "lib/__init__.py": "",
    "lib/core.py": "from app.sub.missing import y\nimport app.a.nothing\nimport numpy\n",
    "lib/leaf.py": "from lib import core, leaf_missing\n",
}


def test_synthetic_modules_and_edges(tmp_path: Path) -> None:
    write(tmp_path, SYNTHETIC)
    modules, imports = all_imports(tmp_path, ["app", "lib", "absent"])
    assert sorted(modules) == ["app", "app.a", "app.b", "app.selfish", "app.sub",
                               "app.sub.deep", "app.util", "lib", "lib.core", "lib.leaf"]
    assert modules["app.sub"] == tmp_path / "app/sub/__init__.py"
    graph = import_graph(modules, imports)
    assert {src: sorted(dsts) for src, dsts in graph.items()} == {
        "app": ["app.util"],
        "app.a": ["app.b"],  # function-level
        "app.b": ["app.a"],  # TYPE_CHECKING, relative
        "app.selfish": ["app.selfish"],
        "app.sub": ["app.sub.deep", "app.util"],  # `from .deep import thing` -> the module
        "app.sub.deep": ["app.b"],  # `from ..b import name` -> app.b; ...outside is beyond
        "app.util": ["app.a", "app.sub.deep"],  # `from app.a import f` -> app.a (f is a name)
        "lib": [],
        "lib.core": [],  # missing modules and third-party ones are no edges
        "lib.leaf": ["lib", "lib.core"],  # `leaf_missing` is a name in lib
    }
    assert graph["app.a"]["app.b"] == [4]
    assert graph["app.b"]["app.a"] == [3]


def test_synthetic_cycles(tmp_path: Path) -> None:
    write(tmp_path, SYNTHETIC)
    modules, imports = all_imports(tmp_path, ["app", "lib"])
    graph = import_graph(modules, imports)
    cycles = import_cycles({src: dsts.keys() for src, dsts in graph.items()})
    assert cycles == [["app.a", "app.b"], ["app.selfish"]]
    message = describe_cycle(cycles[0], graph, modules, tmp_path)
    assert message.splitlines() == [
        "app.a <-> app.b",
        f"    app.a -> app.b  ({Path('app/a.py')}:4)",
        f"    app.b -> app.a  ({Path('app/b.py')}:3)",
    ]
    assert describe_cycle(cycles[1], graph, modules, tmp_path).splitlines() == [
        "app.selfish", f"    app.selfish -> app.selfish  ({Path('app/selfish.py')}:1)"]


def test_synthetic_tree_without_cycles(tmp_path: Path) -> None:
    write(tmp_path, {
        "app/__init__.py": "",
        "app/a.py": "from app import b\nfrom . import c\n",
        "app/b.py": "from app.c import thing\n",
        "app/c.py": "import app\nthing = 1\n",  # importing the package is no cycle by itself
    })
    modules, imports = all_imports(tmp_path, ["app"])
    graph = import_graph(modules, imports)
    assert import_cycles({src: dsts.keys() for src, dsts in graph.items()}) == []


def test_cycle_finder_on_plain_graphs() -> None:
    assert import_cycles({}) == []
    assert import_cycles({"a": ["b"], "b": ["c"], "c": []}) == []
    assert import_cycles({"a": ["a"]}) == [["a"]]
    assert import_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
    # two cycles joined by a one-way edge stay two components
    assert import_cycles({"a": ["b"], "b": ["a", "c"], "c": ["d"], "d": ["c"]}) == [
        ["a", "b"], ["c", "d"]]
    # a long chain (no recursion limit) closing into one big cycle
    chain = {f"m{i}": [f"m{i + 1}"] for i in range(3000)}
    assert import_cycles(chain) == []
    chain["m3000"] = ["m0"]
    assert import_cycles(chain) == [sorted(f"m{i}" for i in range(3001))]


def test_synthetic_forbidden_imports(tmp_path: Path) -> None:
    write(tmp_path, {
        "core/__init__.py": "",
        "core/a.py": "def f():\n    import ui.widgets\n    from tests.helpers import x\n",
        "core/b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ui import w, widgets\n"
        ),
        "ui/__init__.py": "from core import a\n",
        "ui/widgets.py": "from core.a import f\nimport testkit.fakes\n",
    })
    modules, imports = all_imports(tmp_path, ["core", "ui"])
    assert forbidden_imports(imports, modules, ["core"], ["ui"], tmp_path) == [
        f"core.a imports ui.widgets ({Path('core/a.py')}:2)",
        f"core.b imports ui ({Path('core/b.py')}:3)",
        f"core.b imports ui.widgets ({Path('core/b.py')}:3)",
    ]
    assert forbidden_imports(imports, modules, ["core", "ui"], ["tests", "testkit"],
                             tmp_path) == [
        f"core.a imports tests.helpers ({Path('core/a.py')}:3)",
        f"ui.widgets imports testkit.fakes ({Path('ui/widgets.py')}:2)",
    ]
    assert forbidden_imports(imports, modules, ["ui"], ["core"], tmp_path) == [
        f"ui imports core.a ({Path('ui/__init__.py')}:1)",  # `from core import a`
        f"ui.widgets imports core.a ({Path('ui/widgets.py')}:1)",
    ]


def test_synthetic_mirror_helpers(tmp_path: Path) -> None:
    write(tmp_path, {"pkg/__init__.py": "", "pkg/inner/__init__.py": "", "pkg/mod.py": "",
                     "loose/x.py": ""})
    assert is_package_dir(tmp_path / "pkg")
    assert is_package_dir(tmp_path / "pkg/inner")
    assert not is_package_dir(tmp_path / "pkg/mod.py")
    assert not is_package_dir(tmp_path / "loose")  # no __init__.py: setuptools won't ship it
    assert not is_package_dir(tmp_path / "nothing")
