"""app/'s shape: no import circle among its modules, and imports between its packages point the
allowed way (the table below, derived from what the code does). Read with ``ast``, not by
importing, so a circle that Python happens to survive (a name read late) is caught too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from app.core.settings import REPO_ROOT

APP = REPO_ROOT / "app"

# the service packages: each may import the others (their modules stay free of circles, checked
# below), never what runs or serves them
SERVICE = {"chat", "rag", "flow", "ingest", "documents"}
FOUNDATION = {"contracts", "core", "observability"}
# package -> the app packages it may import (a package may always import its own modules)
ALLOWED: dict[str, set[str]] = {
    "contracts": set(),  # names shared by the service, the stacks and the policies
    "core": {"contracts"},  # settings, Redis clients: everything builds on them
    "observability": {"contracts", "core"},  # logs read the settings, never the other way
    "access": FOUNDATION,  # keys and quotas: below the service, which admits chats by them
    **{package: FOUNDATION | SERVICE | {"access"} for package in SERVICE},
    "web": FOUNDATION,  # the static chat page
    "worker": FOUNDATION | SERVICE | {"access"},  # runs the jobs: never the API
    "api": FOUNDATION | SERVICE | {"access", "web"},  # serves: never a worker or local running
    "local": FOUNDATION | SERVICE | {"access", "api", "web", "worker"},  # starts everything
    "selfcheck": FOUNDATION | SERVICE | {"access", "api", "web", "worker"},  # checks everything
}
# single modules allowed past their package's row, with the reason
EXCEPTIONS: dict[tuple[str, str], str] = {
    # the ingest worker process is the chat pool's worker class on another queue (same alive
    # key, sweep and allowlist): it builds on app.worker.runner.FlowchatWorker
    ("app.ingest.worker", "worker"): "IngestWorker subclasses FlowchatWorker",
}
MAX_LINES = 500
LONG_FILE_MARK = "over 500 lines"  # the sentence at the top of a longer file says why


def modules(root: Path = APP) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _module_level(statements: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports run when the module is imported: not in functions, not under TYPE_CHECKING."""
    for node in statements:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            test = node.test
            name = getattr(test, "id", None) or getattr(test, "attr", None)
            if name != "TYPE_CHECKING":
                yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                yield from _module_level(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _module_level(node.body)


def _targets(module: str, node: ast.Import | ast.ImportFrom, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's package (a package's __init__ is its own)
            package = module.split(".")
            package = package[: len(package) - node.level + (1 if module in PACKAGES else 0)]
            base = ".".join([*package, base] if base else package)
        # `from app.x import y`: y is a module of package x, or a name defined in x
        names = [f"{base}.{alias.name}" for alias in node.names]
    for name in names:
        # importing app.x.y also runs app/x/__init__.py: that parent edge is not counted
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name not in {"app", module}:
            yield name


PACKAGES = {name for name, path in modules().items() if path.name == "__init__.py"}


Graph = dict[str, dict[str, int]]  # module -> {imported module: line}


def import_graph(root: Path = APP) -> Graph:
    found = modules(root)
    graph: Graph = {module: {} for module in found}
    for module, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _module_level(tree.body):
            for target in _targets(module, node, set(found)):
                graph[module].setdefault(target, node.lineno)
    return graph


def circle(graph: Graph) -> list[str]:
    """One import circle (``[a, b, ..., a]``), or [] when there is none."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return []


def layer_violations(graph: Graph) -> list[str]:
    problems = []
    for source, targets in graph.items():
        for target, line in targets.items():
            mine, theirs = source.split(".")[1], target.split(".")[1]
            if mine == theirs or (source, theirs) in EXCEPTIONS:
                continue
            if mine not in ALLOWED:
                problems.append(f"{source}: app.{mine} is not in the layer table (test_layers)")
            elif theirs not in ALLOWED[mine]:
                problems.append(f"{source} (line {line}) imports {target}: app.{mine} may not")
    return sorted(problems)


def test_no_import_circle_among_apps_modules() -> None:
    graph = import_graph()
    assert sum(len(targets) for targets in graph.values()) > 100  # the imports were read
    assert circle(graph) == []


def test_imports_between_packages_point_the_allowed_way() -> None:
    assert layer_violations(import_graph()) == []


def test_the_checks_catch_a_circle_and_a_wrong_way_import(tmp_path: Path) -> None:
    """The same checks on a copy of app/ with core importing the worker: both fail."""
    import shutil

    shutil.copytree(APP, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    settings = tmp_path / "app" / "core" / "settings.py"
    settings.write_text("from app.worker.runner import answer_chat\n" + settings.read_text())
    graph = import_graph(tmp_path / "app")
    assert "app.core.settings" in circle(graph)
    assert any(p.startswith("app.core.settings (line 1) imports") for p in layer_violations(graph))


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for package in sorted(PACKAGES - {"app"}):
        doc = ast.get_docstring(ast.parse((modules()[package]).read_text()))
        assert doc and len(doc) > 60, f"{package}/__init__.py needs its one-paragraph docstring"


def test_no_file_over_500_lines_without_saying_why() -> None:
    long = []
    for path in modules().values():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_LINES and LONG_FILE_MARK not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(REPO_ROOT)}: {lines} lines")
    assert long == []
