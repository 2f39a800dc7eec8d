"""The package's layers (docs/architecture.md): imports point one way, counted inside functions too.

    commands/ -> ask/, dashboard/ -> runner, launch -> planning (recipe, catalog, model, estimate,
    data/, hub/, export, metrics, ...) -> rundir/;   train/ (inside a rank) -> planning + rundir

A deferred import hides a dependency; it does not remove it: the scan below reads every import
statement of every module, wherever it sits.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.train_support import tiny_model  # noqa: F401  (the session fixture)

PACKAGE = ROOT / "wizard"
FRONT_END = ("wizard.cli", "wizard.commands", "wizard.ask", "wizard.dashboard", "wizard.runner", "wizard.launch",
             "wizard.pick", "wizard.stopping", "wizard.console")
UI_LIBRARIES = ("rich", "questionary", "prompt_toolkit")
FRONT_END_UI = FRONT_END + ("wizard.ui", "wizard.__main__")  # the front end, and what draws for it
RUN_FOLDER_FILES = {"recipe.yaml", "lock.json", "state.json", "events.jsonl", "train.log", "loss.png", "eval.json",
                    "wizard-checkpoint.json", "running.lock"}
RUN_FOLDER_DIRS = {"adapter", "checkpoints", "tensorboard", "launch"}
# The same names with another meaning: a `datasets` save_to_disk folder holds a state.json of its own.
OTHER_MEANING = {"wizard/data/tables.py": {"state.json"}, "wizard/data/detect.py": {"state.json"}}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(wizard modules, top-level third-party packages) that `module` imports anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            if name == "wizard" or name.startswith("wizard."):
                target = _resolve(name)
                if target and target != module:
                    ours.add(target)
            else:
                theirs.add(name.split(".")[0])
    return ours, theirs


GRAPH = {m: _imports(m)[0] for m in MODULES}


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += GRAPH.get(m, ())
    return seen


def test_no_import_cycle_between_modules():
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_training_process_reaches_nothing_of_the_front_end():
    for module in (m for m in MODULES if _within(m, ("wizard.train",))):
        reached = sorted(m for m in _reach(module) if _within(m, FRONT_END))
        assert reached == [], f"{module} reaches {reached}"


def test_only_train_and_the_tests_import_train():
    importers = sorted(m for m, deps in GRAPH.items() if not _within(m, ("wizard.train",))
                       and any(_within(d, ("wizard.train",)) for d in deps))
    assert importers == []


def test_library_modules_import_no_user_interface():
    """Everything below the front end (planning, data, hub, serve's app, rundir, train) prints nothing itself."""
    for module in (m for m in MODULES if not _within(m, FRONT_END_UI)):
        ours, theirs = _imports(module)
        assert not (theirs & set(UI_LIBRARIES)), f"{module} imports {sorted(theirs & set(UI_LIBRARIES))}"
        front = sorted(d for d in ours if _within(d, FRONT_END))
        assert front == [], f"{module} imports {front}"


def test_run_folder_names_appear_only_in_rundir():
    found = []
    for module, path in MODULES.items():
        if _within(module, ("wizard.rundir",)):
            continue
        rel = path.relative_to(ROOT).as_posix()
        allowed = OTHER_MEANING.get(rel, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value in RUN_FOLDER_FILES - allowed:
                    found.append(f"{rel}:{node.lineno} {node.value!r}")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant):
                if node.right.value in RUN_FOLDER_DIRS | RUN_FOLDER_FILES - allowed:  # run_dir / "adapter"
                    found.append(f"{rel}:{node.lineno} / {node.right.value!r}")
    assert found == []


def test_every_module_is_at_most_500_lines_and_every_package_says_what_it_may_import():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
    for path in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        assert "may import" in doc.lower(), f"{path.relative_to(ROOT)}: the docstring says what the package may import"


# ----------------------------------------------------------------------------- the real process
SPY = '''
import atexit, json, os, sys
def _record():
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main is not None and main.name == "wizard.train.backend":  # python -m wizard.train.backend RUN_DIR
        with open(os.path.join(os.environ["SPY_DIR"], f"{os.getpid()}.json"), "w") as f:
            json.dump(sorted(sys.modules), f)
atexit.register(_record)
'''


@pytest.mark.slow
def test_a_training_process_started_by_the_runner_imports_no_front_end(tmp_path, tiny_model):
    """sys.modules of the real training process, read at its exit (a sitecustomize on its PYTHONPATH)."""
    import json

    from tests.train_support import train_env, write_recipe

    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(SPY)
    recipe = write_recipe(tmp_path, tiny_model, train={"max_steps": 2})
    env = train_env(SPY_DIR=str(spy), PYTHONPATH=os.pathsep.join(filter(None, [str(spy), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([str(Path(sys.executable).parent / "caption-wizard"), "run", str(recipe), "--plain"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    recorded = list(spy.glob("*.json"))
    assert len(recorded) == 1, "the training process recorded its modules"
    modules = json.loads(recorded[0].read_text())
    assert "wizard.train.callbacks" in modules and "torch" in modules  # it trained
    front = sorted(m for m in modules if _within(m, FRONT_END))
    assert front == []
