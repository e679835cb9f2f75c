"""How the package imports itself: no cycles between modules, and DAG parsing stays light.

The import graph is read from the source (``ast``), every ``import`` and ``from ... import``
of ``ioarchive`` modules, at module level or inside functions; ``from ioarchive.x import y``
is an edge to ``ioarchive.x.y`` when ``y`` is a submodule, else to ``ioarchive.x``. Imports
under ``if TYPE_CHECKING:`` never run, so they are not edges.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
PACKAGE = "ioarchive"
HEAVY = ("pyspark", "great_expectations", "boto3")

KNOWN_CYCLES: set[frozenset[str]] = set()
"""Cycles tolerated for now (none): a new one fails the test, and so does a listed one that is gone."""
"""Cycles that exist and are tracked; any other cycle fails, and so does a listed one that is gone."""


# --- the import graph --------------------------------------------------------------------------

def discover_modules(root: Path, package: str) -> dict[str, Path]:
    """``{dotted name: file}`` of every module of ``package`` under ``root`` (not its _data)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        if "__pycache__" in rel.parts or "_data" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST):
    """Import nodes anywhere in ``tree`` except in the body of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``."""
    modules = discover_modules(root, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        own_package = name if is_package else name.rpartition(".")[0]
        own_ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            if node.level:
                base_parts = own_package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
        for target in targets:
            if target.split(".")[0] != package:
                continue
            while target and target not in modules:  # ``import ioarchive.x.y`` of a name, not a module
                target = target.rpartition(".")[0]
            # importing a.b.c also runs the packages a and a.b, except those already running
            implied = {".".join(target.split(".")[:i]) for i in range(1, target.count(".") + 1)}
            for module in {target, *implied} - own_ancestors - {name}:
                if module in modules:
                    graph[name].add(module)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    def strongconnect(start: str) -> None:  # iterative Tarjan
        nonlocal counter
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return [_cycle_in(graph, set(component)) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first)."""
    start = min(component)
    previous: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & component):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if child not in previous:
                previous[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")


def test_package_has_no_import_cycle():
    graph = import_graph(PLUGINS, PACKAGE)
    assert len(graph) > 50 and "ioarchive.cli.main" in graph and "ioarchive.resources" in graph
    assert "ioarchive.spark.session" in graph["ioarchive.spark.steps"]  # edges are really read
    cycles = find_cycles(graph)
    new = [cycle for cycle in cycles if frozenset(cycle) not in KNOWN_CYCLES]
    assert new == [], "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in new)
    gone = KNOWN_CYCLES - {frozenset(cycle) for cycle in cycles}
    assert not gone, f"cycles no longer present, remove them from KNOWN_CYCLES: {[sorted(c) for c in gone]}"


def test_cycle_finder_names_function_level_and_submodule_cycles(tmp_path):
    """The checker itself: it sees imports inside functions and ``from pkg import submodule``."""
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def f():\n    from demo.sub import b\n",
        "sub/__init__.py": "",
        "sub/b.py": "import demo.c\n",
        "c.py": "from . import a\n",
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from demo import e\n",
        "e.py": "from demo.d import *\n",
        "f.py": "from .sub.b import name_not_module\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    graph = import_graph(tmp_path, "demo")
    assert graph["demo.a"] == {"demo.sub", "demo.sub.b"}
    assert graph["demo.c"] == {"demo.a"}
    assert graph["demo.d"] == set()
    assert graph["demo.f"] == {"demo.sub", "demo.sub.b"}
    assert find_cycles(graph) == [["demo.a", "demo.sub.b", "demo.c", "demo.a"]]


# --- what parsing the DAG imports ------------------------------------------------------------------

_PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys
    path = sys.argv[1]
    spec = importlib.util.spec_from_file_location("dag_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    heavy = sys.argv[2].split(",")
    print(json.dumps({
        "heavy": sorted(m for m in sys.modules if m.split(".")[0] in heavy),
        "ioarchive": sys.modules["ioarchive"].__file__ if "ioarchive" in sys.modules else None,
    }))
    """
)


def _modules_after_import(dag_file: Path, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update({
        "PYTHONPATH": str(PLUGINS),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dag_file.parent),
    })
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(dag_file), ",".join(HEAVY)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dag_file", sorted((REPO / "dags").glob("*.py")), ids=lambda p: p.name)
def test_parsing_a_dag_imports_no_spark_gx_or_boto3(dag_file, tmp_path):
    """A fresh interpreter imports the DAG file: Spark, GX and boto3 are not in ``sys.modules``."""
    found = _modules_after_import(dag_file, tmp_path)
    assert found["ioarchive"] == str(PLUGINS / "ioarchive" / "__init__.py")
    assert found["heavy"] == []


def test_heavy_import_probe_sees_an_indirect_import(tmp_path):
    """The probe's control: a DAG that reaches boto3 through a helper module is caught."""
    (tmp_path / "helper_with_boto3.py").write_text("def client():\n    return None\nimport boto3\n")
    dag = tmp_path / "dag.py"
    dag.write_text(f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\nimport helper_with_boto3\nimport ioarchive\n")
    found = _modules_after_import(dag, tmp_path)
    assert "boto3" in found["heavy"]
