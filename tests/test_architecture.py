"""The shape of the harness, read from its source: one-way imports between its folders, a
leaf core, no import inside a function to dodge a cycle, no re-exports, short files."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.paths import REPO

PACKAGES = ("prime", "baselines", "benchmarks")
MAX_LINES = 300


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> list[tuple[str, ast.AST]]:
    """(imported module of ``known``, the import node) for every import in ``path``; a
    ``from package import submodule`` counts as an import of the submodule only."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in known]
            if subs:
                out += [(s, node) for s in subs]
            elif module in known:
                out.append((module, node))
    return [(m, node) for m, node in out if m != name]


def _graph() -> dict[str, set[str]]:
    modules = {k: v for p in PACKAGES for k, v in _modules(p).items()}
    known = set(modules)
    return {name: {m for m, _ in _imports(name, path, known)} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_layers_import_one_way():
    graph = _graph()
    for name, deps in graph.items():
        top = name.split(".")[0]
        below = {"prime": set(), "baselines": {"prime"}, "benchmarks": {"prime", "baselines"}}
        for dep in deps:
            assert dep.split(".")[0] in below[top] | {top}, f"{name} imports {dep}"
    core = {d for d in graph["benchmarks.core"] if d.startswith("benchmarks")}
    assert core <= {"benchmarks.data.loader"}, core  # annotations only (TYPE_CHECKING)
    assert not {d for d in graph["benchmarks.registry"] if d != "benchmarks.core"}


# The folders of the code, lowest first: each may import itself and the ones before it.
LAYERS = (
    ("prime.codec", "prime.schedules", "prime.noising"),
    ("prime.backbones",),
    ("prime.decoder",),
    ("prime.losses", "prime.mask_class"),
    ("prime.sampling",),
    ("prime.diffusion",),
    ("prime",),  # the library's public names (prime/__init__.py)
    ("baselines",),
    ("benchmarks", "benchmarks.core", "benchmarks.registry", "benchmarks.resources"),
    ("benchmarks.streams", "benchmarks.safe_files"),
    ("benchmarks.config",),
    ("benchmarks.tracking",),
    ("benchmarks.runtime",),
    ("benchmarks.data",),
    ("benchmarks.evaluation",),
    ("benchmarks.metrics",),
    ("benchmarks.models",),
    ("benchmarks.weights",),
    ("benchmarks.training",),
    ("benchmarks.tasks",),
    ("benchmarks.reports",),
    ("benchmarks.launch",),
    ("benchmarks.perf",),
    ("benchmarks.cli",),
)
# Annotations only (under TYPE_CHECKING): the one import against the order.
TYPE_ONLY = {("benchmarks.core", "benchmarks.data.loader")}
# Packages whose __init__ is a public facade of the library (the README's "using the core").
FACADES = {"prime", "prime.backbones", "baselines"}


def _layer(module: str) -> int:
    prefixes = [p for group in LAYERS for p in group]
    best = max((p for p in prefixes if module == p or module.startswith(p + ".")), key=len)
    return next(i for i, group in enumerate(LAYERS) if best in group)


def test_folders_import_in_one_direction():
    wrong = [
        f"{name} imports {dep}"
        for name, deps in _graph().items()
        for dep in deps
        if _layer(dep) > _layer(name) and (name, dep) not in TYPE_ONLY
    ]
    assert not wrong, wrong


def test_every_module_has_a_layer():
    assert _layer("benchmarks.launch.dryrun") > _layer("benchmarks.training.runner")
    assert _layer("prime.sampling.sampler") > _layer("prime.decoder.grid_softmax")
    # a new folder of benchmarks/ must be placed in the order, not fall into its base layer
    folders = {m.split(".")[1] for m in _modules("benchmarks") if m.count(".") >= 2}
    named = {p.split(".")[1] for group in LAYERS for p in group if p.startswith("benchmarks.")}
    assert folders <= named, folders - named


def _defined(path: Path) -> set[str]:
    """Names bound at the top of ``path`` by a def, a class or an assignment (also inside
    a top-level if / try), not by an import."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text()).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.If | ast.Try):
            body += node.body + node.orelse + getattr(node, "finalbody", [])
    return names


def test_names_are_imported_from_where_they_are_defined():
    modules = {k: v for p in PACKAGES for k, v in _modules(p).items()}
    defined = {name: _defined(path) for name, path in modules.items()}
    tests = {
        ".".join(p.relative_to(REPO).with_suffix("").parts): p
        for p in (REPO / "tests").rglob("*.py")
    }
    users = {**modules, **tests}
    found = []
    for name, path in users.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module not in modules or module in FACADES:
                continue
            for alias in node.names:
                if alias.name not in defined[module] and f"{module}.{alias.name}" not in modules:
                    found.append(f"{path.relative_to(REPO)}: {alias.name} from {module}")
    assert not found, found


def test_no_function_level_import_of_the_project():
    modules = {k: v for p in PACKAGES for k, v in _modules(p).items()}
    known = set(modules)
    found = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [n for n in ast.walk(node) if n is not node]
                for sub in inner:
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        hits = _imports(name, path, known)
                        if any(n is sub for _, n in hits):
                            found.append(f"{name}.{node.name}: {ast.unparse(sub)}")
    assert not found, found


def test_no_file_is_longer_than_the_limit():
    long = {
        str(p.relative_to(REPO)): n
        for pkg in (*PACKAGES, "tests")
        for p in (REPO / pkg).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_random_streams_are_named_in_one_place():
    from benchmarks.streams import EVAL_STREAMS

    assert len(set(EVAL_STREAMS.values())) == len(EVAL_STREAMS)
    sources = {p: p.read_text() for p in (REPO / "benchmarks" / "tasks").rglob("*.py")}
    every = "\n".join(sources.values())
    for name in EVAL_STREAMS:
        assert f'"{name}"' in every, f"stream {name} is never used"
    for path, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "manual_seed":
                literal = any(isinstance(n, ast.Constant) for n in ast.walk(node.args[0]))
                offset = "ctx.seed" in ast.unparse(node.args[0])
                assert not (literal or offset), f"{path.name}: {ast.unparse(node)}"
