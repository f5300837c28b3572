"""The layout's rules hold: the import contracts of .importlinter, no file-level import
circle, no hidden function-local import between apps, and modules small enough to read.

Putting back any arrow the layout removed (the foundation importing an app, audit importing
the wallet, the wallet reaching into jobs beyond its models, anything but the services
touching the booking SQL) fails here, with the offending import named.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
APPS = ("divine_whispers", "wallet", "jobs", "audit")
MAX_MODULE_LINES = 450
MAX_WALLET_TOP_LEVEL = 10


def test_import_rules_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _source_files() -> Iterator[Path]:
    """The apps' code: tests and migrations are not part of the layout."""
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            yield path


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _runtime_top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not inside functions or TYPE_CHECKING)."""
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try)) and not _is_type_checking_block(node):
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    yield child


def _targets(node: ast.Import | ast.ImportFrom, known: set[str]) -> Iterator[str]:
    """The project modules an import statement loads (a `from package import module` too)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.module and node.level == 0:
        submodules = [f"{node.module}.{alias.name}" for alias in node.names]
        # `from package import module` loads the module; the package itself counts only
        # when a name is taken from its __init__ (a parent package being set up is not a
        # circle: that is how every package imports its own modules).
        names = [name for name in submodules if name in known]
        if len(names) < len(submodules):
            names.append(node.module)
    else:
        names = []
    for name in names:
        if name in known:
            yield name


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in _source_files()}
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        edges = {t for node in _runtime_top_level_imports(tree) for t in _targets(node, known)}
        graph[name] = edges - {name}
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: every group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def test_no_file_level_import_circle():
    assert _strongly_connected(_graph()) == []


def test_the_circle_detector_finds_a_circle():
    """The check above can fail: a planted a → b → c → a circle is found."""
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _strongly_connected(planted) == [["a", "b", "c"]]


def _local_cross_app_imports() -> Iterator[str]:
    for path in _source_files():
        source = path.read_text()
        lines = source.splitlines()
        app = path.relative_to(ROOT).parts[0]
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.col_offset == 0:
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            other = {n.split(".")[0] for n in names if n} & set(APPS) - {app}
            said_why = "#" in lines[node.lineno - 1] or lines[node.lineno - 2].strip().startswith(
                "#"
            )
            if other and not said_why:
                yield f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}"


def test_no_function_local_import_between_apps_without_a_reason():
    assert list(_local_cross_app_imports()) == []


def test_no_module_is_too_long_to_read():
    long = {
        str(path.relative_to(ROOT)): n
        for path in _source_files()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_wallet_top_level_stays_small():
    """Modules and packages of code at the wallet's top level (tests, migrations, templates and
    static files are not code of the layout)."""
    entries = [
        p.name
        for p in (ROOT / "wallet").iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
        and p.name not in ("tests", "migrations")
    ]
    assert len(entries) <= MAX_WALLET_TOP_LEVEL, sorted(entries)


def test_every_module_says_why_it_exists():
    missing = [
        str(path.relative_to(ROOT))
        for path in _source_files()
        if path.stat().st_size
        and ast.get_docstring(ast.parse(path.read_text())) is None
        and path.name not in ("__init__.py", "apps.py")
    ]
    assert missing == []


def test_no_issue_numbers_in_the_code():
    """Why code is as it is belongs in its docstrings; the tracker's numbers go stale."""
    import re

    pattern = re.compile(r"\b[Ii]ssues? #?\d+")
    cited = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in _source_files()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert cited == []


def test_putting_back_a_removed_arrow_breaks_the_contracts(tmp_path):
    """The contracts can fail: a copy of the tree where the foundation imports the wallet
    again, and the admin reaches into the fast path, is refused with both named."""
    import shutil

    for name in (*APPS, "bench"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    with open(tmp_path / "divine_whispers" / "health.py", "a") as health:
        health.write("\nfrom wallet import selectors  # noqa\n")
    with open(tmp_path / "wallet" / "admin" / "wallets.py", "a") as admin_page:
        admin_page.write("\nfrom wallet.services import _fast_path  # noqa\n")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "divine_whispers.health -> wallet.selectors" in result.stdout
    assert "wallet.admin.wallets -> wallet.services._fast_path" in result.stdout
