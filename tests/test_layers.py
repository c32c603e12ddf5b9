"""One direction of dependency: base ← core ← capabilities ← Store facade ← demo ← CLI, and no import cycle.

Imports are read with `ast`, all of them: top-level, function-local and under `if TYPE_CHECKING:` (a type-only
import is a dependency too: it is how the knot this test guards against began)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lineage"

# Lowest first; a module's layer is that of the longest prefix listed, capabilities for everything unlisted.
LAYERS: dict[str, int] = {
    "lineage._version": 0, "lineage.errors": 0, "lineage.limits": 0, "lineage.names": 0,
    "lineage.languages": 0, "lineage.licenses": 0, "lineage.dimensions": 0,
    "lineage.core": 1, "lineage.schemas": 1, "lineage.outputs": 1,  # the storage contract; where user files go
    "lineage.store": 3, "lineage": 3,
    "lineage.demo": 4,
    "lineage.cli": 5, "lineage.__main__": 5,
}
CAPABILITIES = 2
NAMES = {0: "base", 1: "core", 2: "capabilities", 3: "facade", 4: "demo", 5: "cli"}


def layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYERS and (n > 1 or len(parts) == 1):
            return LAYERS[".".join(parts[:n])]
    return CAPABILITIES


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The lineage modules `module` imports anywhere in `source` (a submodule when `from pkg import name` names one)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*package, *([base] if base else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name == "lineage" or name.startswith("lineage.")}


def graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(files)
    return {
        name: {i for i in imports(path.read_text(), name, path.name == "__init__.py", known) if i != name}
        for name, path in files.items()
    }


def upward(edges: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} ({NAMES[layer(a)]}) imports {b} ({NAMES[layer(b)]})"
        for a, targets in edges.items() for b in targets if layer(b) > layer(a)
    )


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def private_imports(root: Path) -> list[str]:
    """`from x import _name` where x is another lineage module: a module's `_private` names are its own."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("lineage")):
                found += [f"{module} imports {alias.name} from {'.' * node.level}{node.module or ''}"
                          for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


# What a CLI module may import besides lineage.cli: the facade, the errors, the demo `lineage demo` runs, and base
# constants and output-file helpers; the types of results under `if TYPE_CHECKING:`. No capability: a command's
# work is a Store method's.
CLI_MAY_IMPORT = ("lineage.cli", "lineage.store", "lineage.errors", "lineage.demo", "lineage.limits",
                  "lineage.dimensions", "lineage.outputs")
DEMO_MAY_IMPORT = ("lineage.demo", "lineage.store", "lineage.errors", "lineage.core.sqlutil")  # the last: quoting


class _WithoutTypeChecking(ast.NodeTransformer):
    def visit_If(self, node: ast.If) -> ast.AST:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
        return ast.Pass() if name == "TYPE_CHECKING" else self.generic_visit(node)


def layer_imports(root: Path, top: str, may_import: tuple[str, ...]) -> list[str]:
    """The imports of the modules in `top`'s layer outside `may_import` (type-only imports excepted)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    found = []
    for name, path in sorted(files.items()):
        if layer(name) != LAYERS[top]:
            continue
        source = ast.unparse(_WithoutTypeChecking().visit(ast.parse(path.read_text())))
        found += [
            f"{name} imports {target}"
            for target in sorted(imports(source, name, path.name == "__init__.py", set(files)))
            if not any(target == allowed or target.startswith(f"{allowed}.") for allowed in may_import)
        ]
    return found


def cli_imports(root: Path) -> list[str]:
    return layer_imports(root, "lineage.cli", CLI_MAY_IMPORT)


def test_no_upward_import() -> None:
    assert upward(graph(PACKAGE)) == []


def test_no_import_cycle() -> None:
    assert cycles(graph(PACKAGE)) == []


def test_the_cli_and_the_demo_call_the_store() -> None:
    assert cli_imports(PACKAGE) == []
    assert layer_imports(PACKAGE, "lineage.demo", DEMO_MAY_IMPORT) == []


def test_store_methods_are_typed() -> None:
    """Every public Store method annotates its parameters and result; forwarded options are a TypedDict
    (`**options: Unpack[...]`), never `**options: Any`."""
    import inspect

    from lineage.store import Store

    untyped = []
    for name, method in inspect.getmembers(Store, callable):
        if name.startswith("_"):
            continue
        signature = inspect.signature(method)
        for param in signature.parameters.values():
            if param.name in ("self", "cls"):
                continue
            annotation = str(param.annotation)
            if param.annotation is inspect.Parameter.empty or (
                param.kind is param.VAR_KEYWORD and not annotation.startswith("Unpack[")
            ):
                untyped.append(f"{name}({param.name}: {annotation})")
        if signature.return_annotation is inspect.Signature.empty:
            untyped.append(f"{name} -> ?")
    assert untyped == []


def test_forwarded_options_match_the_capability() -> None:
    """A TypedDict of options a Store method forwards names the capability's keyword parameters, typed alike."""
    import inspect

    from lineage.build import Build, ExportFields
    from lineage.diversity import DiversityFields, diversity
    from lineage.filters.run import RunFields, run_filter

    for fields, function, own in [(RunFields, run_filter, set()), (DiversityFields, diversity, {"scope"}),
                                  (ExportFields, Build.export, set())]:
        keywords = {p.name: p.annotation for p in inspect.signature(function).parameters.values()
                    if p.kind is p.KEYWORD_ONLY and p.name not in own}
        typed = {k: getattr(v, "__forward_arg__", v) for k, v in fields.__annotations__.items()}
        assert typed == keywords, fields.__name__


def errors_elsewhere(root: Path) -> list[str]:
    """Classes outside lineage/errors.py that subclass one of its errors: the LineageError tree is one module."""
    tree = ast.parse((root / "errors.py").read_text())
    errors = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                (base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)) in errors
                for base in node.bases
            ):
                found.append(f"{module_name(path, root)}.{node.name}")
    return found


def test_errors_live_in_lineage_errors() -> None:
    assert errors_elsewhere(PACKAGE) == []


def test_no_private_import() -> None:
    assert private_imports(PACKAGE) == []


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "lineage"


@pytest.mark.parametrize("where", ["top", "function", "type_checking"])
def test_an_upward_import_is_caught(tmp_path: Path, where: str) -> None:
    line = "from lineage.store import Store\n"
    source = {
        "top": line,
        "function": "def f():\n    " + line,
        "type_checking": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    " + line,
    }[where]
    root = write(tmp_path, {"lineage/__init__.py": "", "lineage/store.py": "", "lineage/core/__init__.py": "",
                            "lineage/core/handle.py": source})
    assert upward(graph(root)) == ["lineage.core.handle (core) imports lineage.store (facade)"]


def test_a_cycle_is_caught(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "lineage/__init__.py": "",
        "lineage/filters/__init__.py": "",
        "lineage/filters/run.py": "from lineage.engines import local\n",
        "lineage/engines/__init__.py": "",
        "lineage/engines/local.py": "def f():\n    from lineage.filters.run import execute\n",
        "lineage/build.py": "from .filters import run\n",
    })
    assert cycles(graph(root)) == [["lineage.engines.local", "lineage.filters.run"]]
    assert upward(graph(root)) == []


def test_a_private_import_is_caught(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "lineage/__init__.py": "from lineage._version import __version__\n",  # a private module is fine
        "lineage/features/containment.py": "from lineage.features.minhash import _fmix64, signatures\n",
    })
    assert private_imports(root) == ["lineage.features.containment imports _fmix64 from lineage.features.minhash"]


def test_a_capability_import_in_the_cli_is_caught(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "lineage/__init__.py": "",
        "lineage/cli/__init__.py": "",
        "lineage/cli/sets_cmds.py": (
            "from typing import TYPE_CHECKING\nfrom lineage.cli.common import emit\n"
            "if TYPE_CHECKING:\n    from lineage.sets import SetInfo\n"
            "def create():\n    from lineage.sets import read_ids_file\n    from lineage.store import Store\n"
        ),
        "lineage/cli/common.py": "from lineage.errors import LineageError\n",
        "lineage/sets.py": "",
        "lineage/store.py": "",
        "lineage/errors.py": "",
    })
    assert cli_imports(root) == ["lineage.cli.sets_cmds imports lineage.sets"]
