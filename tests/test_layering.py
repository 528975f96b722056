"""The layering of docs/ARCHITECTURE.md, pinned: which room of the backend may import which.

A *room* is a top-level module of ``backend/ganverse3d`` (``api``, ``bundle``, ...) or a top-level folder
(``render``, ``inverse``, ...); ``ganverse3d`` itself is the package's ``__init__``. Every ``import`` of every
module is read with :mod:`ast` - module-level and function-local ones, absolute and relative - and each edge
between two rooms must be in :data:`ALLOWED`. A new edge fails the test with the file and line of the import;
if the edge is right, add it to :data:`ALLOWED` *and* to the table in docs/ARCHITECTURE.md, in one commit.

Finer rules hold inside rooms:

* no two modules import each other, directly or through others (a function-local import that hides a cycle
  is still a cycle: move the shared piece down instead);

* ``stylegan2/networks.py`` imports nothing of the project (it is self-contained pure PyTorch);
* the user path - ``api`` and ``worker``, what the add-on runs - never reaches training code (a module named
  ``train*``, ``evaluate`` or ``metrics``, the run kit, the CLI), not even through a chain of imports;
* the Blender add-on imports only the standard library and Blender's own modules: never torch, numpy or
  ganverse3d (it knows the backend only through the worker protocol).

Dynamic imports (``bundle`` builds a bundle's class from its recorded name) are not edges.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "backend" / "ganverse3d"
ADDON = REPO / "blender_addon"

# Rooms every room may use: the bottom of the house. Each also has its own line in ALLOWED (they import
# only each other, downward: errors <- devices, files <- bundle <- assets <- runs).
BASE = {"ganverse3d", "errors", "devices", "files", "bundle", "assets"}

# room -> the rooms it may import. The order of the lines is the layering, bottom first.
ALLOWED: dict[str, set[str]] = {
    # the floor: no project imports at all, or only of rooms above it in this list
    "ganverse3d": set(),                                   # __init__: __version__ only
    "errors": set(),
    "devices": {"errors"},
    "files": {"errors"},
    "bundle": {"errors", "files", "devices", "ganverse3d"},
    "assets": {"errors", "files", "bundle", "ganverse3d"},  # the asset registry (assets/manifest.json)
    "distributed": {"errors"},                             # torch.distributed: process group, DDP, sharding
    "runs": {"errors", "files", "bundle", "devices", "distributed", "ganverse3d"},
    # pure math and the renderer: nothing of networks, training or data
    "geometry": {"errors"},
    "render": {"geometry", "errors", "devices"},
    "export": {"geometry", "render", "errors", "files", "devices", "ganverse3d"},
    # the procedural world (cars, scenes, world datasets, the world feature net)
    "world": BASE | {"geometry", "render", "export", "runs"},
    # StyleGAN2: networks, loaders, training, FID; reads poses with the world feature net
    "stylegan2": BASE | {"world", "runs"},
    # multi-view data from a generator or the world, segmenters
    "dataset": BASE | {"stylegan2", "world", "geometry", "render", "export", "runs"},
    # the inverse-graphics network
    "inverse": BASE | {"dataset", "geometry", "render", "export", "runs"},
    # planned: StyleGAN-R (mapping network, fine-tuning, editing) and DatasetGAN parts
    "neural": BASE | {"inverse", "stylegan2", "dataset", "world", "geometry", "render", "export", "runs"},
    "parts": BASE | {"inverse", "stylegan2", "dataset", "world", "geometry", "render", "export", "runs"},
    # the user side: the facade, the worker the add-on talks to, the command line
    "api": BASE | {"inverse", "neural", "parts", "dataset", "geometry", "render", "export"},
    "worker": BASE | {"api", "geometry"},
    "cli": BASE | {"api", "runs", "neural", "parts", "inverse", "dataset", "stylegan2", "world", "export",
                   "render", "geometry"},
}

# Rooms that ARCHITECTURE.md plans but that have no code yet (a listed room that is neither here nor on disk
# is a stale line of the table).
PLANNED = set()

# The user path (what `reconstruct`, the worker and the add-on run) and what it must never load.
USER_PATH_ROOMS = {"api", "worker"}
TRAINING_ROOMS = {"runs", "cli"}
TRAINING_MODULE = re.compile(r"(^|\.)(train\w*|evaluate|metrics)$")

SELF_CONTAINED = {"ganverse3d.stylegan2.networks"}

BLENDER_MODULES = {"bpy", "bpy_extras", "bmesh", "mathutils", "gpu", "gpu_extras", "blf", "bgl", "aud",
                   "idprop", "addon_utils", "rna_prop_ui", "bl_ui", "bl_operators", "_bpy"}


@dataclass(frozen=True)
class Import:
    source: str        # importing module, e.g. "ganverse3d.api"
    target: str        # imported module, e.g. "ganverse3d.inverse.evaluate"
    file: Path
    line: int

    def where(self, root: Path) -> str:
        base = REPO if self.file.is_relative_to(REPO) else root.parent
        return f"{self.file.relative_to(base)}:{self.line}"


def module_name(package_dir: Path, file: Path) -> str:
    parts = [package_dir.name, *file.relative_to(package_dir).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(package_dir: Path, name: str) -> bool:
    """Whether dotted ``name`` (starting with the package's name) is a module or package on disk."""
    path = package_dir.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(package_dir: Path, file: Path) -> list[Import]:
    """Every import in ``file`` (at any depth) of a module inside the package, resolved to a module name."""
    top = package_dir.name
    source = module_name(package_dir, file)
    is_package = file.name == "__init__.py"
    package = source if is_package else source.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level - 1 >= len(base):
                    raise AssertionError(f"{file}:{node.lineno}: relative import above the package")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from X import name`: name is a submodule when one exists on disk, else an attribute of X
            targets = [f"{module}.{alias.name}" if _is_module(package_dir, f"{module}.{alias.name}") else module
                       for alias in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target == top or target.startswith(top + "."):
                found.append(Import(source, target, file, node.lineno))
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[0] if len(parts) == 1 else parts[1]


def package_imports(package_dir: Path) -> list[Import]:
    return [imp for file in sorted(package_dir.rglob("*.py")) for imp in imports_of(package_dir, file)]


def room_violations(package_dir: Path, allowed=ALLOWED) -> list[str]:
    """'file:line: a -> b (module)' for every import between rooms that ``allowed`` does not list."""
    problems = []
    for imp in package_imports(package_dir):
        a, b = room(imp.source), room(imp.target)
        if a == b:
            continue
        if a not in allowed:
            problems.append(f"{imp.where(package_dir)}: room '{a}' is not in the layering table")
        elif b not in allowed[a]:
            problems.append(f"{imp.where(package_dir)}: {a} -> {b} ({imp.source} imports {imp.target})")
    return problems


def self_contained_violations(package_dir: Path, modules=SELF_CONTAINED) -> list[str]:
    return [f"{imp.where(package_dir)}: {imp.source} must import nothing of the project, imports {imp.target}"
            for imp in package_imports(package_dir) if imp.source in modules and imp.target != imp.source]


def _is_training(module: str) -> bool:
    return room(module) in TRAINING_ROOMS or bool(TRAINING_MODULE.search(module))


def user_path_violations(package_dir: Path) -> list[str]:
    """Chains of imports from the user path (api, worker) to training code, each hop with its file:line."""
    edges: dict[str, list[Import]] = {}
    for imp in package_imports(package_dir):
        edges.setdefault(imp.source, []).append(imp)

    def expand(module: str) -> list[str]:
        # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
        parts = module.split(".")
        return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]

    problems = []
    starts = sorted({m for m in edges if room(m) in USER_PATH_ROOMS} |
                    {module_name(package_dir, f) for f in package_dir.glob("*.py")
                     if f.stem in USER_PATH_ROOMS})
    for start in starts:
        seen, queue = {start: []}, [start]
        while queue:
            module = queue.pop(0)
            for imp in edges.get(module, []):
                for target in expand(imp.target):
                    if target in seen:
                        continue
                    chain = seen[module] + [imp]
                    seen[target] = chain
                    if _is_training(target):
                        hops = " -> ".join(f"{i.target} ({i.where(package_dir)})" for i in chain)
                        problems.append(f"{start} reaches training code: {start} -> {hops}")
                    else:
                        queue.append(target)
    return problems


def import_cycles(package_dir: Path) -> list[str]:
    """Each cycle of modules importing each other (function-local imports included), with the file:line of
    every edge; a cycle is read in the order of its first module's imports."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in package_imports(package_dir):
        if imp.target != imp.source:
            edges.setdefault(imp.source, {}).setdefault(imp.target, imp)
    problems, reported = [], set()
    for start in sorted(edges):
        # shortest way back to `start`, breadth first
        back, queue = {start: None}, [start]
        while queue:
            module = queue.pop(0)
            for target, imp in edges.get(module, {}).items():
                if target == start:
                    chain, node = [imp], module
                    while back[node] is not None:
                        chain.insert(0, back[node])
                        node = back[node].source
                    members = frozenset(i.source for i in chain)
                    if members not in reported:
                        reported.add(members)
                        problems.append("import cycle: " + " -> ".join(
                            f"{i.source} ({i.where(package_dir)})" for i in chain) + f" -> {start}")
                    queue = []
                    break
                if target not in back:
                    back[target] = imp
                    queue.append(target)
    return problems


def addon_violations(addon_dir: Path) -> list[str]:
    allowed = set(sys.stdlib_module_names) | BLENDER_MODULES
    problems = []
    for file in sorted(addon_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in allowed:
                    problems.append(f"{file.relative_to(addon_dir.parent)}:{node.lineno}: the add-on imports "
                                    f"{name} (only the standard library and Blender's modules)")
    return problems


def _report(problems: list[str]) -> str:
    return "\n" + "\n".join(problems)


# -- the repository --------------------------------------------------------------------------------------


def test_every_room_is_in_the_table():
    on_disk = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()} | {"ganverse3d"}
    assert not on_disk - set(ALLOWED), f"rooms missing from ALLOWED (and docs/ARCHITECTURE.md): {on_disk - set(ALLOWED)}"
    stale = set(ALLOWED) - on_disk - PLANNED
    assert not stale, f"ALLOWED lists rooms that do not exist and are not planned: {stale}"
    for a, targets in ALLOWED.items():
        assert targets <= set(ALLOWED), f"{a} may import unknown rooms {targets - set(ALLOWED)}"


def test_layering_table_has_no_cycles():
    order = list(ALLOWED)
    for a, targets in ALLOWED.items():
        for b in targets:
            assert order.index(b) < order.index(a), f"{a} -> {b} points up the table (lines are bottom first)"


def test_no_upward_import_between_rooms():
    problems = room_violations(PACKAGE)
    assert not problems, _report(problems)


def test_stylegan2_networks_is_self_contained():
    problems = self_contained_violations(PACKAGE)
    assert not problems, _report(problems)


def test_user_path_never_loads_training_code():
    problems = user_path_violations(PACKAGE)
    assert not problems, _report(problems)


def test_no_import_cycles():
    problems = import_cycles(PACKAGE)
    assert not problems, _report(problems)


def test_addon_imports_only_bpy_and_the_standard_library():
    problems = addon_violations(ADDON)
    assert not problems, _report(problems)


def documented_edges(text: str) -> dict[str, set[str]]:
    """The "room | may import" table of docs/ARCHITECTURE.md as ``room -> rooms`` ("base" = :data:`BASE`)."""
    table = text[text.index("| room | may import |"):]
    edges = {}
    for row in table.splitlines()[2:]:
        if not row.startswith("|"):
            break
        room, imports = (cell.strip() for cell in row.strip("|").split("|"))
        room = room.split()[0].strip("`")
        names = set() if imports == "nothing" else {name.strip() for name in imports.split(",")}
        edges[room] = (names - {"base"}) | (BASE - {room} if "base" in names else set())
    return edges


def test_architecture_document_states_exactly_the_allowed_edges():
    documented = documented_edges((REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8"))
    differences = {room: (sorted(documented.get(room, set()) - rooms), sorted(rooms - documented.get(room, set())))
                   for room, rooms in ALLOWED.items() if documented.get(room) != rooms}
    differences.update({room: "not in ALLOWED" for room in set(documented) - set(ALLOWED)})
    assert not differences, f"docs/ARCHITECTURE.md's table differs from ALLOWED (only in doc, only in test): {differences}"


# -- the checker itself: it must catch what it is for ------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    package = root / "ganverse3d"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return package


@pytest.fixture
def synthetic(tmp_path):
    return _write(tmp_path, {
        "__init__.py": '__version__ = "0"\n',
        "errors.py": "",
        "geometry/__init__.py": "from .camera import Camera\n",
        "geometry/camera.py": "from ..errors import InputError\nclass Camera: ...\n",
        "render/__init__.py": "",
        "render/renderer.py": "from ..geometry import Camera\n",
        "inverse/__init__.py": "",
        "inverse/model.py": "from ..render import renderer\n",
        "inverse/evaluate.py": "",
        "api.py": "from .inverse.model import *\n",
    })


def test_checker_accepts_downward_imports(synthetic):
    assert room_violations(synthetic) == []
    assert user_path_violations(synthetic) == []


@pytest.mark.parametrize("statement", [
    "from ..inverse.model import InverseGraphicsNet",       # relative, module level
    "from .. import inverse",                                # relative, the room as a name
    "import ganverse3d.inverse.model",                       # absolute
    "def f():\n    from ganverse3d.inverse import model",   # function-local
])
def test_checker_catches_an_upward_import(synthetic, statement):
    path = synthetic / "render" / "rasterize.py"
    path.write_text("import torch\n\n" + statement + "\n", encoding="utf-8")
    problems = room_violations(synthetic)
    line = 4 if statement.startswith("def") else 3
    assert problems == [f"ganverse3d/render/rasterize.py:{line}: render -> inverse "
                        f"(ganverse3d.render.rasterize imports ganverse3d.inverse"
                        f"{'' if statement == 'from .. import inverse' else '.model'})"], problems


def test_checker_names_a_room_missing_from_the_table(synthetic):
    (synthetic / "newroom.py").write_text("from .errors import InputError\n", encoding="utf-8")
    assert room_violations(synthetic) == ["ganverse3d/newroom.py:1: room 'newroom' is not in the layering table"]


def test_checker_catches_training_code_on_the_user_path(synthetic):
    (synthetic / "inverse" / "model.py").write_text("def f():\n    from .evaluate import turntable\n",
                                                    encoding="utf-8")
    problems = user_path_violations(synthetic)
    assert len(problems) == 1 and "ganverse3d.inverse.evaluate (ganverse3d/inverse/model.py:2)" in problems[0]


def test_checker_catches_an_import_cycle(synthetic):
    (synthetic / "inverse" / "evaluate.py").write_text("from .model import x\n", encoding="utf-8")
    (synthetic / "inverse" / "model.py").write_text("def f():\n    from . import evaluate\n", encoding="utf-8")
    assert import_cycles(synthetic) == [
        "import cycle: ganverse3d.inverse.evaluate (ganverse3d/inverse/evaluate.py:1) -> "
        "ganverse3d.inverse.model (ganverse3d/inverse/model.py:2) -> ganverse3d.inverse.evaluate"]


def test_checker_catches_a_project_import_in_networks(synthetic):
    _write(synthetic.parent, {"stylegan2/__init__.py": "", "stylegan2/networks.py": "import math\nfrom ..errors import InputError\n"})
    assert self_contained_violations(synthetic) == [
        "ganverse3d/stylegan2/networks.py:2: ganverse3d.stylegan2.networks must import nothing of the project, "
        "imports ganverse3d.errors"]


def test_checker_catches_torch_in_the_addon(tmp_path):
    addon = tmp_path / "blender_addon"
    (addon / "pkg").mkdir(parents=True)
    (addon / "pkg" / "ops.py").write_text("import json\nimport bpy\nfrom . import x\n\ndef f():\n    import torch\n",
                                          encoding="utf-8")
    assert addon_violations(addon) == ["blender_addon/pkg/ops.py:6: the add-on imports torch "
                                       "(only the standard library and Blender's modules)"]
