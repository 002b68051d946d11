"""The package's structure, checked statically: no import cycles among sagemix modules, and
docs/ARCHITECTURE.md cites only modules, paths and names that exist.

Imports are read with ``ast`` from every module under ``src/sagemix`` (function-level imports
included: a lazy import that closes a circle is still a circle), so nothing is imported or run.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_graph(src: Path, package: str = "sagemix") -> dict[str, set[str]]:
    """``module -> modules it imports`` over the package's own modules (a package is its ``__init__``)."""
    files: dict[str, tuple[Path, bool]] = {}
    for f in sorted((src / package).rglob("*.py")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, (f, is_pkg) in files.items():
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]  # the package relative imports start from
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + [node.module or ""]) if node.level \
                    else node.module or ""
                base = base.rstrip(".")
                # ``from pkg import sub`` imports the submodule; ``from mod import name`` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:  # sagemix.data.registry.ImageData -> sagemix.data.registry
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each holds a cycle), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_cycle_finder_finds_a_lazy_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from .sub.b import g\n\ndef f():\n    return g()\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def g():\n    from ..a import f  # lazy, still a circle\n    return f\n")
    (pkg / "sub" / "c.py").write_text("from . import b\nfrom pkg.sub.b import g\n")
    graph = module_graph(tmp_path, "pkg")
    assert graph["pkg.sub.c"] == {"pkg.sub.b"} and graph["pkg"] == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.sub.b"]]
    (pkg / "sub" / "b.py").write_text("def g():\n    return 1\n")
    assert import_cycles(module_graph(tmp_path, "pkg")) == []


def test_no_import_cycles_among_sagemix_modules() -> None:
    graph = module_graph(SRC)
    assert len(graph) > 100 and "sagemix.data.layouts" in graph["sagemix.data.imagefolder"]
    assert import_cycles(graph) == []


# --------------------------------------------------------------------------------- the docs' names
ROOT = SRC.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def _known(src: Path, tests: Path) -> tuple[dict[str, set[str]], set[str], set[str], set[str]]:
    """(module -> its top-level names, class members, parameter names and string constants, test names)."""
    modules: dict[str, set[str]] = {}
    members: set[str] = set()
    words: set[str] = set()
    for f in sorted((src / "sagemix").rglob("*.py")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        tree = ast.parse(f.read_text(encoding="utf-8"))
        top = modules.setdefault(".".join(parts[:-1] if parts[-1] == "__init__" else parts), set())
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            top.update(t.id for t in targets if isinstance(t, ast.Name))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                top.add(node.name)
            if isinstance(node, (ast.Import, ast.ImportFrom)):  # re-exports (sagemix.mixers.create_mixer)
                top.update((a.asname or a.name).split(".")[0] for a in node.names)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for m in node.body:
                    if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        members.add(m.name)
                    targets = m.targets if isinstance(m, ast.Assign) else [getattr(m, "target", None)]
                    members.update(t.id for t in targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
                    and isinstance(node.ctx, ast.Store):
                members.add(node.attr)  # an instance attribute (self.setup = ...)
            elif isinstance(node, ast.arg):
                words.add(node.arg)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                words.add(node.value)
    test_names = {f.stem for f in tests.rglob("*.py")}
    for f in tests.rglob("*.py"):
        for node in ast.parse(f.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            test_names.update(t.id for t in targets if isinstance(t, ast.Name))
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                test_names.add(node.name)
    return modules, members, words, test_names


def _outside(name: str) -> bool:
    """A name of Python, torch or the standard library (``ValueError``, ``torch._assert_async``, ``fcntl``)."""
    import builtins
    import importlib
    import importlib.util

    import torch.utils.data

    head, *rest = name.split(".")
    for obj in (builtins, torch, torch.utils.data, torch.nn.functional):
        if hasattr(obj, head) and not rest:
            return True
    try:
        obj = importlib.import_module(head) if importlib.util.find_spec(head) else None
    except (ImportError, ValueError):
        obj = None
    for part in rest:
        obj = getattr(obj, part, None)
    return obj is not None and head not in ("sagemix",)


def missing_citations(text: str, root: Path = ROOT) -> list[str]:
    """The backticked modules, paths and names of ``text`` that the code does not have.

    Checked: paths (``functional/sage.py``, ``mixers/``, ``tests/test_golden.py``: from the
    repository or from ``src/sagemix``), dotted names (``sagemix.data``, ``evaluate.options``,
    ``targets.check_images``: a module, or a module and one of its names; ``mixer.apply``: members
    of the package's classes; ``eval.options``: a config's keys) and identifiers, with a call's
    arguments dropped (``make_any_loader(...)``). Code with spaces or operators, file names of a
    run (``config.json``), flags and placeholders (``<run>``) are prose, not citations.
    """
    modules, members, words, test_names = _known(root / "src", root / "tests")
    short = {m.split(".")[-1] for m in modules}
    everything = set().union(*modules.values()) | members
    bad = []
    for token in re.findall(r"`([^`\n]+)`", text):
        if "/" in token and re.fullmatch(r"[\w./-]+", token) and not token.startswith("-"):
            if not any((base / token).exists() for base in (root, root / "src" / "sagemix")):
                bad.append(token)
            continue
        m = re.fullmatch(r"@?([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(\(.*\))?", token)
        if not m or re.search(r"\.(py|md|json|jsonl|csv|pt)$", m.group(1)):
            continue
        name = m.group(1)
        parts = name.split(".")
        if len(parts) == 1:
            ok = name in everything or name in short or name in words or name in test_names or _outside(name)
        else:
            full = name if parts[0] == "sagemix" else None
            mods = [full] if full else [k for k in modules if k == f"sagemix.{name}" or k.endswith(f".{name}")]
            owners = [k for k in modules if k.endswith(f".{'.'.join(parts[:-1])}") or k == ".".join(parts[:-1])]
            ok = (bool(mods and all(k in modules for k in mods))
                  or any(parts[-1] in modules[k] for k in owners)
                  or all(p in members for p in parts[1:])  # mixer.apply, trainer.setup.model
                  or all(p in words for p in parts)  # a config's keys: eval.options
                  or _outside(name))
        if not ok:
            bad.append(token)
    return bad


def test_the_citation_check_reports_what_does_not_exist() -> None:
    text = ("`make_any_loader(...)`, `sagemix.data.decide_stream`, `evaluate.options`, `targets.check_images`, "
            "`functional/sage.py`, `mixers/`, `ValueError`, `torch._assert_async`, `config.json`, `<run>/eval/`, "
            "`out = mixer(images)`, `--progress/--no-progress`, `mixer.apply`")
    assert missing_citations(text) == []
    wrong = ("`make_any_loaderr(...)`, `sagemix.data.no_such_rule`, `evaluate.no_module`, `targets.no_name`, "
             "`functional/nope.py`, `nomodule/`, `torch._no_such_thing`")
    assert missing_citations(wrong) == ["make_any_loaderr(...)", "sagemix.data.no_such_rule", "evaluate.no_module",
                                        "targets.no_name", "functional/nope.py", "nomodule/", "torch._no_such_thing"]


def test_every_module_path_and_name_architecture_md_cites_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "make_any_loader" in text and "accuracy_sums" in text
    assert missing_citations(text) == []
