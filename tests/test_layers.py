"""Imports of the product packages run one way, and no module imports itself back.

The rules, read from the source with :mod:`ast` (imports inside functions and under
``TYPE_CHECKING`` count: they are dependencies too):

- packages: ``config <- env <- strategies <- {state, trainer} <- bot``; ``state`` sees only
  ``env`` and ``config``, ``trainer`` sees ``state``, ``strategies``, ``env`` and ``config``,
  and nothing imports ``bot``;
- inside ``trainer/``: ``data``, ``jobs`` and ``models`` are leaves, ``evaluation`` uses
  ``data``, ``training`` uses ``data``, ``jobs`` and ``evaluation`` (its validation scores are
  backtests), ``tuning`` uses those four, ``retrain`` uses ``data``, ``evaluation``,
  ``training`` and ``models``, ``verification`` uses ``evaluation`` and ``models``; the
  modules at the top (``trainer/cli.py``, ``trainer/train_ppo.py``) may use any of them;
- no import cycle among product modules.

Every failure names the file and line of the import that breaks the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PACKAGES: Mapping[str, frozenset[str]] = {
    "config": frozenset(),
    "env": frozenset({"config"}),
    "strategies": frozenset({"env", "config"}),
    "state": frozenset({"env", "config"}),
    "trainer": frozenset({"state", "strategies", "env", "config"}),
    "bot": frozenset({"trainer", "state", "strategies", "env", "config"}),
}
"""Product package -> the other product packages it may import."""

TRAINER_PARTS: Mapping[str, frozenset[str]] = {
    "data": frozenset(),
    "jobs": frozenset(),
    "models": frozenset(),
    "evaluation": frozenset({"data"}),
    "training": frozenset({"data", "jobs", "evaluation"}),
    "tuning": frozenset({"data", "jobs", "evaluation", "training"}),
    "retrain": frozenset({"data", "evaluation", "training", "models"}),
    "verification": frozenset({"evaluation", "models"}),
}
"""Subpackage of ``trainer/`` -> the other subpackages it may import. Modules directly in
``trainer/`` (the commands) sit on top of all of them, and no subpackage imports them."""


@dataclass(frozen=True)
class Import:
    """``source`` (a module) imports ``target`` (a module or package) at ``path:line``."""

    source: str
    target: str
    path: Path
    line: int

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line} imports {self.target}"


def module_names(root: Path, packages: Mapping[str, object]) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``: dotted name -> file (a package is its ``__init__``)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports(root: Path, packages: Mapping[str, object]) -> list[Import]:
    """Every import of one product module by another, wherever it sits in the file."""
    modules = module_names(root, packages)
    found = []
    for source, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in sorted(set(_targets(node, source, is_package, modules))):
                if target in modules and target != source:
                    found.append(Import(source, target, path, node.lineno))
    return found


def _targets(
    node: ast.Import | ast.ImportFrom, source: str, is_package: bool, modules: Mapping[str, Path]
) -> Iterator[str]:
    """The modules an import statement loads: ``from a.b import c`` is ``a.b.c`` when that
    is a module, else ``a.b`` (``c`` is a name in it); relative imports are resolved."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parts = source.split(".")
        anchor = parts[: len(parts) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, base] if base else anchor)
    for alias in node.names:
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base


def layer_violations(found: list[Import], root: Path) -> list[str]:
    """One line per import against :data:`PACKAGES` or :data:`TRAINER_PARTS`."""
    broken = []
    for imp in found:
        source_package, target_package = imp.source.split(".")[0], imp.target.split(".")[0]
        if source_package != target_package:
            if target_package not in PACKAGES[source_package]:
                broken.append(f"{imp.where(root)}: {source_package} {_may_import(sorted(PACKAGES[source_package]))}")
        elif source_package == "trainer":
            rule = _trainer_rule(imp.source, imp.target)
            if rule:
                broken.append(f"{imp.where(root)}: {rule}")
    return broken


def _trainer_rule(source: str, target: str) -> str | None:
    """Why ``source`` may not import ``target`` (both in ``trainer/``), or None."""
    source_part, target_part = _trainer_part(source), _trainer_part(target)
    if source_part is None or source_part == target_part:
        return None  # the commands on top use anything; a subpackage uses itself
    if target_part is None:
        return f"trainer.{source_part} may not import the commands on top of trainer/ ({target})"
    if target_part not in TRAINER_PARTS[source_part]:
        return f"trainer.{source_part} {_may_import([f'trainer.{p}' for p in sorted(TRAINER_PARTS[source_part])])}"
    return None


def _may_import(allowed: list[str]) -> str:
    return f"may import only {', '.join(allowed)}" if allowed else "may import none of the others"


def _trainer_part(module: str) -> str | None:
    """``trainer.data.history`` -> ``data``; a module on top of ``trainer/`` -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in TRAINER_PARTS else None


def import_cycles(found: list[Import], root: Path) -> list[str]:
    """One line per cycle (a strongly connected group of modules), with the imports that tie it."""
    graph: dict[str, list[Import]] = {}
    for imp in found:
        graph.setdefault(imp.source, []).append(imp)
    cycles = []
    for group in _strongly_connected(graph):
        if len(group) > 1:
            ties = "; ".join(imp.where(root) for name in sorted(group) for imp in graph[name] if imp.target in group)
            cycles.append(f"cycle of {len(group)} modules ({', '.join(sorted(group))}): {ties}")
    return cycles


def _strongly_connected(graph: Mapping[str, list[Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on a deep import chain)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph.get(start, [])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for imp in edges:
                if imp.target not in index:
                    index[imp.target] = low[imp.target] = len(index)
                    stack.append(imp.target)
                    on_stack.add(imp.target)
                    work.append((imp.target, iter(graph.get(imp.target, []))))
                    break
                if imp.target in on_stack:
                    low[node] = min(low[node], index[imp.target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
    return groups


@pytest.fixture(scope="module")
def product_imports() -> list[Import]:
    return imports(ROOT, PACKAGES)


def test_the_checker_reads_the_real_imports(product_imports):
    """Guards against a vacuous pass: the parser sees top-level, in-function and
    ``TYPE_CHECKING`` imports of the real tree, and every subpackage of trainer/."""
    edges = {(imp.source, imp.target) for imp in product_imports}
    assert len(edges) > 300
    assert ("trainer.evaluation.backtest", "env.crypto_trading_env") in edges  # top level
    assert ("trainer.cli", "trainer.training.single_symbol") in edges  # inside a function
    assert ("trainer.tuning.report", "trainer.tuning.folds") in edges  # under TYPE_CHECKING
    assert ("trainer.train_ppo", "trainer.cli") in edges
    assert set(TRAINER_PARTS) == {p.name for p in (ROOT / "trainer").iterdir() if (p / "__init__.py").is_file()}


def test_imports_follow_the_layers(product_imports):
    broken = layer_violations(product_imports, ROOT)
    assert not broken, "imports against the layer order:\n" + "\n".join(broken)


def test_no_import_cycles(product_imports):
    cycles = import_cycles(product_imports, ROOT)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def tiny_tree(tmp_path: Path) -> Path:
    """A product tree that follows every rule: one module per package, imports pointing down."""
    _write(tmp_path, {f"{package}/__init__.py": "" for package in PACKAGES} | {
        "config/settings.py": "import json\n",
        "env/candles.py": "from config.settings import json\n",
        "strategies/base.py": "from env import candles\n",
        "state/ledger.py": "import env.candles\nfrom config import settings\n",
        "trainer/__init__.py": "",
        "trainer/cli.py": "def run():\n    from trainer.tuning.search import tune\n",
        **{f"trainer/{part}/__init__.py": "" for part in TRAINER_PARTS},
        "trainer/data/history.py": "from env.candles import json\n",
        "trainer/evaluation/backtest.py": "from ..data.history import json\nfrom strategies.base import candles\n",
        "trainer/training/fit.py": "from trainer.evaluation import backtest\nfrom state.ledger import env\n",
        "trainer/tuning/search.py": "from trainer.training.fit import backtest\n",
        "bot/daemon.py": "from trainer.cli import run\n",
    })
    return tmp_path


def test_a_clean_tree_passes(tiny_tree):
    found = imports(tiny_tree, PACKAGES)
    assert ("trainer.evaluation.backtest", "trainer.data.history") in {(i.source, i.target) for i in found}
    assert layer_violations(found, tiny_tree) == []
    assert import_cycles(found, tiny_tree) == []


@pytest.mark.parametrize(("path", "code", "message"), [
    ("env/bad.py", "def f():\n    from bot.daemon import run\n",
     "env/bad.py:2 imports bot.daemon: env may import only config"),
    ("state/bad.py", "import strategies.base\n",
     "state/bad.py:1 imports strategies.base: state may import only config, env"),
    ("config/bad.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from env import candles\n",
     "config/bad.py:3 imports env.candles: config may import none of the others"),
    ("trainer/data/bad.py", "from trainer.evaluation.backtest import json\n",
     "trainer/data/bad.py:1 imports trainer.evaluation.backtest: trainer.data may import none of the others"),
    ("trainer/evaluation/bad.py", "def fold():\n    from trainer.training import fit\n",
     "trainer/evaluation/bad.py:2 imports trainer.training.fit: trainer.evaluation may import only trainer.data"),
    ("trainer/jobs/bad.py", "from ..training.fit import backtest\n",
     "trainer/jobs/bad.py:1 imports trainer.training.fit: trainer.jobs may import none of the others"),
    ("trainer/training/bad.py", "import trainer.cli\n",
     ("trainer/training/bad.py:1 imports trainer.cli: trainer.training may not import the commands on top of "
      "trainer/ (trainer.cli)")),
])
def test_a_bad_import_is_named_with_the_rule_it_breaks(tiny_tree, path, code, message):
    _write(tiny_tree, {path: code})
    assert layer_violations(imports(tiny_tree, PACKAGES), tiny_tree) == [message]


def test_a_cycle_is_named_with_the_imports_that_tie_it(tiny_tree):
    _write(tiny_tree, {"trainer/data/history.py": "def late():\n    from trainer.data import split\n",
                       "trainer/data/split.py": "from trainer.data.history import late\n"})
    assert import_cycles(imports(tiny_tree, PACKAGES), tiny_tree) == [
        ("cycle of 2 modules (trainer.data.history, trainer.data.split): "
         "trainer/data/history.py:2 imports trainer.data.split; trainer/data/split.py:1 imports trainer.data.history")
    ]
