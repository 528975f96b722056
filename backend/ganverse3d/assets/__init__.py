"""The registry of shipped weights: every model in this folder by kind and name, read from ``manifest.json``.

Each entry of the manifest (written by ``scripts/update_assets_manifest.py``, checked by
``tests/test_assets.py``) names one file with its size, sha256, the script that reproduces it, what it is,
and under which ``kind`` and ``name`` a user picks it:

    kind         setting that picks it   names
    inverse      model                   oracle (default), gan
    generator    generator               world64 (default)
    segmenter    segmenter               world (default)
    feature_net  feature_net             world (default)
    neural       neural_model            world64 (default)
    part_branch  part_branch             oracle (the part branch of the inverse model of that name)

``default`` is a name too: it picks the kind's default entry. :func:`resolve` is the one way the library
turns what a user set (a name or a file path) into a file; the registry lives in the folder it lists so
that a shipped file and its entry travel together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, setting
from ..files import is_file

FOLDER = Path(__file__).resolve().parent
MANIFEST_FORMAT_VERSION = 1

# Every kind of shipped model, with the setting (library name) through which a user picks one.
KIND_SETTINGS = {"inverse": "model", "generator": "generator", "segmenter": "segmenter",
                 "feature_net": "feature_net", "neural": "neural_model",
                 "part_branch": "part_branch", "interpreter": "interpreter"}
_KIND_WORDS = {"inverse": "inverse-graphics model", "generator": "generator", "segmenter": "segmenter",
               "feature_net": "feature net", "neural": "StyleGAN-R model",
               "part_branch": "part branch", "interpreter": "style interpreter"}
DEFAULT = "default"


@dataclass(frozen=True)
class Asset:
    """One shipped weights file, as ``manifest.json`` lists it."""

    kind: str
    name: str
    default: bool
    path: Path
    bytes: int
    sha256: str
    script: str
    description: str


def manifest_entries() -> dict[str, dict]:
    """The manifest's entries by file name, as written (read afresh: the file is small and may be replaced)."""
    return json.loads((FOLDER / "manifest.json").read_text(encoding="utf-8"))["assets"]


def shipped(kind: str | None = None) -> list[Asset]:
    """The shipped models (of ``kind``, if given), default first within each kind."""
    if kind is not None and kind not in KIND_SETTINGS:
        raise ValueError(f"Unknown asset kind {kind!r}; the kinds are {', '.join(KIND_SETTINGS)}.")
    entries = [Asset(kind=entry["kind"], name=entry["name"], default=entry["default"],
                     path=FOLDER / file_name, bytes=entry["bytes"], sha256=entry["sha256"], script=entry["script"],
                     description=entry["description"])
               for file_name, entry in manifest_entries().items()]
    return sorted((asset for asset in entries if kind in (None, asset.kind)),
                  key=lambda asset: (list(KIND_SETTINGS).index(asset.kind), not asset.default, asset.name))


def lookup(kind: str, name: str | None = None) -> Asset | None:
    """The shipped model of ``kind`` called ``name`` (None or ``default``: the kind's default), or None."""
    for asset in shipped(kind):
        if (asset.default if name in (None, DEFAULT) else asset.name == name):
            return asset
    return None


def resolve(kind: str, name_or_path=None, setting_name: str | None = None) -> Path:
    """The weights file a user means: a shipped model's name (None = the default) or a path to a file.

    A name wins over a file of the same name in the working folder, so ``--model gan`` means the shipped
    model wherever it is run. InputError (one sentence naming the valid names) for anything else, naming the
    setting ``setting_name`` (default: the kind's own, :data:`KIND_SETTINGS`).
    """
    setting_name = setting_name or KIND_SETTINGS[kind]
    asset = lookup(kind, None if name_or_path is None else str(name_or_path))
    if asset is not None:
        if not asset.path.is_file():
            raise InputError(f"The shipped {_KIND_WORDS[kind]} {asset.name!r} ({asset.path}) is missing; reproduce it "
                             f"with {asset.script} or set {setting(setting_name)} to a weights file.")
        return asset.path
    if name_or_path in (None, DEFAULT):
        raise InputError(f"No {_KIND_WORDS[kind]} is shipped with this install; set {setting(setting_name)} to a "
                         f"weights file.")
    path = Path(name_or_path)
    if is_file(path):  # a name too long for the file system is one sentence, not a traceback
        return path
    raise InputError(f"The {setting(setting_name)} {name_or_path} does not exist; give a weights file or "
                     f"the name of a shipped {_KIND_WORDS[kind]}: {describe(kind)}.")


def is_shipped(path) -> bool:
    """Whether ``path`` is one of the shipped weights files."""
    resolved = Path(path).resolve()
    return any(asset.path == resolved for asset in shipped())


def describe(kind: str) -> str:
    """The names of ``kind`` for messages and help texts: ``"oracle (the default) or gan"``, ``"world64"``."""
    models = shipped(kind)
    if not models:
        return "none is shipped"
    if len(models) == 1:
        return models[0].name
    words = [f"{asset.name} (the default)" if asset.default else asset.name for asset in models]
    return f"{', '.join(words[:-1])} or {words[-1]}"
