"""View codes: candidates, their contact sheet, and the one-minute annotation (paper Sec. 3.1, Appendix C).

``ganverse3d dataset views`` samples candidate codes, renders each with a few content codes, and writes to
its output folder:

* ``candidates.safetensors``: tensor ``ws`` [N, num_ws, w_dim] float32, the candidates' W codes (after
  truncation); candidate ``i`` is view id ``i`` forever after. Its safetensors metadata has one entry,
  ``"ganverse3d"``, a JSON object: ``format`` ("ganverse3d-view-candidates"), ``version``, ``generator`` (the
  path it was made from), ``generator_fingerprint`` (:func:`generator_fingerprint`), ``view_layers`` (k: the
  view is the first k entries of W*, :func:`~ganverse3d.stylegan2.views.default_view_layers` unless
  chosen), ``truncation``, ``seed``.
* ``sheet.png``: bands of up to ``SHEET_BAND`` columns, one column per candidate headed by its id, one row per
  content sample; every column should show one viewpoint.
* ``views.toml``: the annotation template. One commented line per candidate; the user uncomments the
  views to keep and sets each one's azimuth ``bin`` (12 bins: bin b means azimuth b * 30 degrees). When a
  pose net is available (the world feature net), each line carries its guess as a starting point, with
  how much its readings agree over ``pose_contents`` cars (the sheet's rows and more: four rows that agree
  say little, and a view code that shows different cars from different sides poisons the multi-view
  data); ``--preselect-per-bin N`` also uncomments the N most consistent views of each bin. The file
  stays a plain list a person checks against the sheet.

Annotation file (TOML)::

    candidates = "candidates.safetensors"     # optional; relative to this file
    [defaults]                                # optional; these values are the defaults
    elevation = 0.0                           # degrees
    distance = 3.8                            # object units (a car fits the unit sphere)
    fov = 30.0                                # vertical field of view, degrees
    [views]
    12 = { bin = 3 }                          # view id = { bin = 0..11 [, elevation, distance, fov] }
    40 = { bin = 9, elevation = 10.0 }

Each chosen view becomes a :class:`~ganverse3d.dataset.format.ViewSpec` with azimuth ``bin * 30``; these
are initial cameras that inverse-graphics training refines.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from safetensors import SafetensorError, safe_open
from tqdm import tqdm

from .. import assets
from ..bundle import load_module, save_tensors
from ..errors import InputError, setting
from ..files import exists, is_dir, is_file, save_png, shown_path, to_uint8, write_text
from ..stylegan2.networks import Generator
from ..stylegan2.views import default_view_layers, mix_view_and_content
from ..world.features import WorldFeatureNet
from ..world.scene import CAMERA_DISTANCE, CAMERA_FOV_Y
from .format import ViewSpec

CANDIDATES_FORMAT = "ganverse3d-view-candidates"
CANDIDATES_VERSION = 1
_METADATA_KEY = "ganverse3d"
AZIMUTH_BINS = 12
BIN_DEGREES = 360 / AZIMUTH_BINS
DEFAULT_ELEVATION = 0.0
# The world's camera: the default generator was trained on world renders made with it.
DEFAULT_DISTANCE = CAMERA_DISTANCE
DEFAULT_FOV = CAMERA_FOV_Y
SHEET_BAND = 16
# Sheet tiles are scaled to a width in this range: big enough to judge a view, small enough for 64 columns.
SHEET_TILE_WIDTH = (64, 128)
_LABEL_HEIGHT = 14
_VIEW_KEYS = {"bin", "elevation", "distance", "fov"}
# Mean resultant length of a candidate's azimuths from which on its cars count as seen from one viewpoint: two cars
# 26 degrees either side of their mean give 0.9, so they stay within a bin of each other.
CONSISTENT_AGREEMENT = 0.9
# Images per pose-net forward pass (a few hundred candidates x dozens of cars do not fit one batch).
_POSE_BATCH = 256


# ---------------------------------------------------------------------------------------------------
# Candidates


@dataclass(frozen=True)
class Candidates:
    """Candidate view codes: ``ws`` [N, num_ws, w_dim] float32 (view id = row) and how they were made."""

    ws: torch.Tensor
    view_layers: int
    truncation: float
    seed: int
    generator_fingerprint: str


def generator_fingerprint(G: Generator) -> str:
    """sha256 of the generator's tensors (names, shapes, float32 values): the same weights give the same
    fingerprint whichever file format they were read from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(G.state_dict().items()):
        digest.update(f"{name}{list(tensor.shape)}".encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def sample_codes(G: Generator, count: int, rng: torch.Generator, truncation: float) -> torch.Tensor:
    """``count`` W codes [count, num_ws, w_dim]: ``G.mapping`` of normal z drawn from ``rng`` (CPU)."""
    device = next(G.parameters()).device
    z = torch.randn(count, G.z_dim, generator=rng).to(device)
    return G.mapping(z, truncation_psi=truncation).cpu()


def save_candidates(path, candidates: Candidates, generator_path) -> None:
    # One metadata entry holding sorted JSON: safetensors writes several entries in a random order, which
    # would break "same seed, same bytes".
    description = {"format": CANDIDATES_FORMAT, "version": CANDIDATES_VERSION, "generator": str(generator_path),
                   "generator_fingerprint": candidates.generator_fingerprint, "view_layers": candidates.view_layers,
                   "truncation": candidates.truncation, "seed": candidates.seed}
    save_tensors(path, {"ws": candidates.ws.float().contiguous()},
                 {_METADATA_KEY: json.dumps(description, sort_keys=True)})


def load_candidates(path) -> Candidates:
    """Read a candidates file; InputError (one sentence) when it is missing or not one."""
    path = Path(path)
    if not is_file(path):
        raise InputError(f"View candidates file {shown_path(path)} does not exist; make it with "
                         f"`ganverse3d dataset views`.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            ws = handle.get_tensor("ws") if "ws" in handle.keys() else None
    except (SafetensorError, OSError):
        raise InputError(f"{path} is not a readable view candidates file.") from None
    try:
        description = json.loads(metadata.get(_METADATA_KEY, "{}"))
    except json.JSONDecodeError:
        description = {}
    if not isinstance(description, dict) or description.get("format") != CANDIDATES_FORMAT or ws is None:
        raise InputError(f"{path} is not a view candidates file (made by `ganverse3d dataset views`).")
    try:
        candidates = Candidates(ws=ws, view_layers=int(description["view_layers"]),
                                truncation=float(description["truncation"]), seed=int(description["seed"]),
                                generator_fingerprint=str(description["generator_fingerprint"]))
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path} has damaged view candidates metadata.") from None
    if ws.ndim != 3:
        raise InputError(f"{path} holds ws of shape {list(ws.shape)}, not [N, num_ws, w_dim].")
    return candidates


def check_candidates_fit(candidates: Candidates, G: Generator, path) -> None:
    """InputError unless ``candidates`` were sampled from this very generator (view ids mean nothing else)."""
    if candidates.generator_fingerprint != generator_fingerprint(G):
        raise InputError(f"{path} was made with another generator; run `ganverse3d dataset views` with this one.")


# ---------------------------------------------------------------------------------------------------
# Images


@torch.no_grad()
def render_view_content(G: Generator, ws_view: torch.Tensor, ws_content: torch.Tensor, view_layers: int) -> torch.Tensor:
    """Images of content codes in view codes, both [B, num_ws, w_dim] (CPU or the generator's device):
    W* takes its first ``view_layers`` entries from ``ws_view``, the rest from ``ws_content``.

    Returns [B, 3, h, w] float32 in [0, 1] on the CPU, cropped to the generator's content box.
    """
    device = next(G.parameters()).device
    styles = mix_view_and_content(G, ws_view.to(device), ws_content.to(device), view_layers)
    images = G.synthesis.from_styles(styles, noise_mode="const")
    return G.crop_to_content((images + 1) / 2).clamp(0, 1).float().cpu()


def _tile(image: torch.Tensor) -> Image.Image:
    tile = Image.fromarray(to_uint8(image))
    low, high = SHEET_TILE_WIDTH
    width = min(max(tile.width, low), high)
    if width == tile.width:
        return tile
    height = max(1, round(tile.height * width / tile.width))
    return tile.resize((width, height), Image.Resampling.NEAREST if width > tile.width else Image.Resampling.BOX)


def candidate_sheet(tiles: list[list[torch.Tensor]], labels: list[str]) -> np.ndarray:
    """The contact sheet: ``tiles[row][column]`` images [3, h, w] in [0, 1], columns headed by ``labels``.

    Columns are cut into bands of ``SHEET_BAND``; returns an RGB uint8 array [H, W, 3].
    """
    rows, columns = len(tiles), len(labels)
    pictures = [[_tile(image) for image in row] for row in tiles]
    tile_width, tile_height = pictures[0][0].size
    gap = 2
    bands = math.ceil(columns / SHEET_BAND)
    band_height = _LABEL_HEIGHT + rows * (tile_height + gap)
    sheet = Image.new("RGB", (min(columns, SHEET_BAND) * (tile_width + gap) - gap, bands * band_height),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for column, label in enumerate(labels):
        band, position = divmod(column, SHEET_BAND)
        left, top = position * (tile_width + gap), band * band_height
        text_width = draw.textlength(label, font=font)
        draw.text((left + (tile_width - text_width) / 2, top), label, fill=(0, 0, 0), font=font)
        for row in range(rows):
            sheet.paste(pictures[row][column], (left, top + _LABEL_HEIGHT + row * (tile_height + gap)))
    return np.asarray(sheet)


# ---------------------------------------------------------------------------------------------------
# Pose suggestions


@dataclass(frozen=True)
class PoseGuess:
    """A pose net's reading of one candidate view over several cars (degrees)."""

    azimuth: float
    elevation: float
    agreement: float  # mean resultant length of the cars' azimuths: 1 = every car seen from the same side
    cars: int         # how many cars (content codes) the reading is over

    @property
    def bin(self) -> int:
        return round(self.azimuth / BIN_DEGREES) % AZIMUTH_BINS


def consistency_summary(guesses: list[PoseGuess], min_agreement: float = CONSISTENT_AGREEMENT) -> str:
    """One sentence on how well a generator's view codes fix the viewpoint: how many candidates the pose net
    sees alike in all the cars it read (agreement >= ``min_agreement``) and which azimuth bins those cover."""
    consistent = [guess for guess in guesses if guess.agreement >= min_agreement]
    bins = sorted({guess.bin for guess in consistent})
    covered = ", ".join(map(str, bins)) if bins else "none"
    cars = guesses[0].cars if guesses else 0
    return (f"{len(consistent)} of {len(guesses)} candidate views look alike in all {cars} cars to the pose net "
            f"(agreement >= {min_agreement:.2f}), covering {len(bins)} of {AZIMUTH_BINS} bins: {covered}.")


def preselect_views(guesses: list[PoseGuess], per_bin: int, min_agreement: float = CONSISTENT_AGREEMENT) -> set[int]:
    """View ids to uncomment in the template: in each azimuth bin, the up to ``per_bin`` candidates whose rows
    the pose net sees most alike, among those with agreement >= ``min_agreement`` (ties: the lower id)."""
    chosen = set()
    for azimuth_bin in range(AZIMUTH_BINS):
        in_bin = [view_id for view_id, guess in enumerate(guesses)
                  if guess.bin == azimuth_bin and guess.agreement >= min_agreement]
        in_bin.sort(key=lambda view_id: (-guesses[view_id].agreement, view_id))
        chosen.update(in_bin[:per_bin])
    return chosen


@torch.no_grad()
def guess_poses(pose_net, tiles: list[list[torch.Tensor]]) -> list[PoseGuess]:
    """One :class:`PoseGuess` per column of ``tiles[row][column]`` ([3, h, w] in [0, 1], a row per car) from a
    world feature net (:class:`ganverse3d.world.features.WorldFeatureNet`, which reads azimuth in 12 bins
    and elevation)."""
    device = next(pose_net.parameters()).device
    columns = len(tiles[0])
    images = torch.stack([image for row in tiles for image in row])
    height, width = images.shape[-2:]
    # The net was trained on square renders: pad (not stretch) a wide image to a square.
    pad_x, pad_y = max(0, height - width), max(0, width - height)
    images = F.pad(images, (pad_x // 2, pad_x - pad_x // 2, pad_y // 2, pad_y - pad_y // 2), mode="replicate")
    azimuths, elevations = [], []
    for chunk in images.split(_POSE_BATCH):
        _, azimuth_logits, elevation = pose_net(chunk.to(device))
        azimuths.append(pose_net.azimuth_deg(azimuth_logits).cpu())
        elevations.append(elevation.cpu())
    azimuth = torch.deg2rad(torch.cat(azimuths)).reshape(-1, columns)
    elevation = torch.cat(elevations).reshape(-1, columns)
    guesses = []
    for column in range(columns):
        sine, cosine = azimuth[:, column].sin().mean(), azimuth[:, column].cos().mean()
        guesses.append(PoseGuess(azimuth=math.degrees(math.atan2(sine, cosine)) % 360,
                                 elevation=float(elevation[:, column].mean()),
                                 agreement=float(torch.hypot(sine, cosine)), cars=len(tiles)))
    return guesses


# ---------------------------------------------------------------------------------------------------
# The annotation


@dataclass(frozen=True)
class Annotation:
    """A parsed annotation file: the chosen views (sorted by id) and the candidates file it names (or None)."""

    views: tuple[ViewSpec, ...]
    candidates: Path | None


def annotation_template(generator_path, candidates_name: str, num_candidates: int, view_layers: int,
                        guesses: list[PoseGuess] | None, preselected: set[int] = frozenset(),
                        min_agreement: float = CONSISTENT_AGREEMENT) -> str:
    """The ``views.toml`` text that ``dataset views`` writes (format in the module docstring); the lines of the
    ``preselected`` view ids (needs ``guesses``; chosen at ``min_agreement``) come uncommented, as suggestions
    to check."""
    lines = [
        "# GANverse3D view annotation: the paper's one-minute labelling of view codes (Sec. 3.1, Appendix C).",
        f"# Generator {generator_path}; a view is the first {view_layers} W* entries of its candidate code.",
        "#",
        "# sheet.png shows each candidate view in a column headed by its id, with a few cars in the rows.",
        "# Choose views in which the cars are seen alike and that together cover all azimuths, uncomment",
        "# their lines below, and set each bin to the nearest of 12 azimuths (bin b = b * 30 degrees):",
        "#   bin 0 = the front, 3 = the side with the front pointing left, 6 = the rear,",
        "#   9 = the side with the front pointing right, 1-2, 4-5, 7-8, 10-11 = in between.",
        "# Optional per view: elevation, distance, fov (defaults below). Then run `ganverse3d dataset synth`.",
        "",
        f'candidates = "{candidates_name}"',
        "",
        "[defaults]",
        f"elevation = {DEFAULT_ELEVATION!r}",
        f"distance = {float(DEFAULT_DISTANCE)!r}",
        f"fov = {float(DEFAULT_FOV)!r}",
        "",
        "[views]",
    ]
    if guesses is None:
        lines.append("# (no pose net was available, so no bins are suggested: replace each ? by a bin 0-11)")
    elif preselected:
        lines.append(f"# The {len(preselected)} uncommented views were preselected from the pose net's guesses (the "
                     f"most consistent per bin, agreement >= {min_agreement:.2f}): check each against sheet.png.")
    for view_id in range(num_candidates):
        if guesses is None:
            lines.append(f"# {view_id} = {{ bin = ? }}")
        else:
            guess = guesses[view_id]
            comment = "" if view_id in preselected else "# "
            lines.append(f"{comment}{view_id} = {{ bin = {guess.bin} }}    # pose net: azimuth {guess.azimuth:.0f}, "
                         f"elevation {guess.elevation:.0f}, {guess.cars} cars agree {guess.agreement:.2f}")
    return "\n".join(lines) + "\n"


def _number(path, where: str, name: str, value, low: float, high: float, low_open: bool = False,
            high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{path}: {where} {name} must be a number, not {value!r}.")
    if value < low or value > high or (low_open and value == low) or (high_open and value == high):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InputError(f"{path}: {where} {name} must lie in {bounds}, not {value!r}.")
    return float(value)


def _camera_values(path, where: str, table: dict, defaults: dict) -> dict:
    return {
        "elevation": _number(path, where, "elevation", table.get("elevation", defaults["elevation"]), -90, 90,
                             low_open=True, high_open=True),
        "distance": _number(path, where, "distance", table.get("distance", defaults["distance"]), 0, math.inf,
                            low_open=True, high_open=True),
        "fov_y": _number(path, where, "fov", table.get("fov", defaults["fov"]), 0, 180, low_open=True, high_open=True),
    }


def parse_annotation(text: str, path, num_candidates: int | None) -> Annotation:
    """Parse annotation ``text`` (read from ``path``, named in errors) for candidates 0 .. num_candidates - 1
    (None: any view id, e.g. to learn which candidates file the annotation names)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path} is not valid TOML ({error}).") from None
    unknown = sorted(set(document) - {"candidates", "defaults", "views"})
    if unknown:
        raise InputError(f"{path} has an unknown entry {unknown[0]!r}; it may hold candidates, [defaults] and [views].")
    candidates = document.get("candidates")
    if candidates is not None and not isinstance(candidates, str):
        raise InputError(f"{path}: candidates must be a file name in quotes.")
    defaults_table = document.get("defaults", {})
    if not isinstance(defaults_table, dict) or set(defaults_table) - {"elevation", "distance", "fov"}:
        raise InputError(f"{path}: [defaults] may only set elevation, distance and fov.")
    defaults = {"elevation": DEFAULT_ELEVATION, "distance": DEFAULT_DISTANCE, "fov": DEFAULT_FOV}
    defaults = _camera_values(path, "the default", defaults_table, defaults)
    defaults = {"elevation": defaults["elevation"], "distance": defaults["distance"], "fov": defaults["fov_y"]}

    views_table = document.get("views", {})
    if not isinstance(views_table, dict) or not views_table:
        raise InputError(f"{path} chooses no view; uncomment the lines of the views to keep in its [views] table.")
    views = []
    for key, entry in views_table.items():
        if not key.isdigit():
            raise InputError(f"{path}: view id {key!r} is not a whole number.")
        view_id = int(key)
        if num_candidates is not None and view_id >= num_candidates:
            raise InputError(f"{path} annotates view {view_id}, but the candidates are numbered 0 to "
                             f"{num_candidates - 1}.")
        where = f"view {view_id}"
        if not isinstance(entry, dict):
            raise InputError(f"{path}: {where} must be a table such as {{ bin = 3 }}.")
        if set(entry) - _VIEW_KEYS:
            raise InputError(f"{path}: {where} has an unknown key {sorted(set(entry) - _VIEW_KEYS)[0]!r}; use bin, "
                             f"elevation, distance and fov.")
        azimuth_bin = entry.get("bin")
        if isinstance(azimuth_bin, bool) or not isinstance(azimuth_bin, int) or not 0 <= azimuth_bin < AZIMUTH_BINS:
            raise InputError(f"{path}: {where} has bin {azimuth_bin!r}; bins are whole numbers from 0 to "
                             f"{AZIMUTH_BINS - 1} (bin b = b * 30 degrees of azimuth).")
        views.append(ViewSpec(view_id=view_id, azimuth=azimuth_bin * BIN_DEGREES, bin=azimuth_bin,
                              **_camera_values(path, where, entry, defaults)))
    views.sort(key=lambda view: view.view_id)
    candidates_path = None if candidates is None else Path(path).parent / candidates
    return Annotation(views=tuple(views), candidates=candidates_path)


def read_annotation(path, num_candidates: int | None) -> Annotation:
    """Read and check an annotation file (:func:`parse_annotation`)."""
    path = Path(path)
    if not exists(path):  # InputError for a name the system refuses (too long)
        raise InputError(f"View annotation {shown_path(path)} does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:  # a folder, no permission
        raise InputError(f"View annotation {shown_path(path)} cannot be read: "
                         f"{error.strerror or type(error).__name__}.") from None
    except UnicodeDecodeError:
        raise InputError(f"View annotation {shown_path(path)} cannot be read as UTF-8 text.") from None
    return parse_annotation(text, path, num_candidates)


# ---------------------------------------------------------------------------------------------------
# The command


def load_pose_net(spec: str, device) -> WorldFeatureNet | None:
    """The world feature net that suggests each candidate's bin: ``spec`` is "auto" (the shipped one where this
    install has it), "none", a shipped feature net's name or a bundle path."""
    if spec == "none":
        return None
    if spec == "auto":
        shipped = assets.lookup("feature_net")
        if not shipped.path.is_file():
            return None
        spec = str(shipped.path)
    path = assets.resolve("feature_net", spec, setting_name="pose_net")
    return load_module(path, expected_class=WorldFeatureNet, device=device)


def write_view_candidates(G: Generator, generator_path, out, count: int, contents: int = 4, seed: int = 0,
                          truncation: float = 0.7, view_layers: int | None = None, pose_net=None,
                          pose_contents: int = 32, preselect_per_bin: int = 0,
                          min_agreement: float = CONSISTENT_AGREEMENT, batch_size: int = 16) -> tuple[Candidates, list[PoseGuess] | None]:
    """Sample ``count`` candidate view codes and write ``out/candidates.safetensors``, ``out/sheet.png`` and
    ``out/views.toml`` (module docstring). The candidates come first from a ``torch.Generator`` seeded with
    ``seed``, then the sheet's ``contents`` content codes, then the pose net's further ones, so the same seed
    gives the same files (and the same candidates whatever the number of contents).

    Args:
        G: the generator (any device); generator_path: its file, recorded in the outputs.
        pose_net: a world feature net to suggest bins, or None for a template without suggestions.
        pose_contents: cars the pose net reads each candidate over: the sheet's rows, then more content codes
            (at least the sheet's rows are read).
        preselect_per_bin: with a pose net, uncomment up to this many views per bin (:func:`preselect_views`)
            among those whose cars agree at least ``min_agreement``.
    Returns:
        The candidates and the pose guesses (None without a pose net).
    """
    view_layers = default_view_layers(G.num_ws) if view_layers is None else view_layers
    if not 1 <= view_layers < G.num_ws:
        raise InputError(f"{setting('view_layers')} must be from 1 to {G.num_ws - 1} for this generator, not {view_layers}.")
    if not 0 < truncation <= 1:
        raise InputError(f"{setting('truncation')} must lie in (0, 1], not {truncation:g}.")
    if preselect_per_bin and pose_net is None:
        raise InputError(f"{setting('preselect_per_bin')} needs a pose net to guess the bins; give {setting('pose_net')}.")
    out = Path(out)
    if exists(out) and not is_dir(out):
        raise InputError(f"The output {shown_path(out)} is a file; give a folder.")
    if exists(out / "views.toml"):
        raise InputError(f"{shown_path(out)} already holds a views.toml, perhaps annotated; give a new folder or "
                         f"delete it first.")
    rng = torch.Generator().manual_seed(seed)
    candidates = Candidates(ws=sample_codes(G, count, rng, truncation), view_layers=view_layers,
                            truncation=truncation, seed=seed, generator_fingerprint=generator_fingerprint(G))
    ws_contents = sample_codes(G, contents, rng, truncation)

    extra = (sample_codes(G, pose_contents - contents, rng, truncation)
             if pose_net is not None and pose_contents > contents else ws_contents[:0])
    bar = tqdm(total=(len(ws_contents) + len(extra)) * count, desc="dataset views", unit="img", leave=False)

    def rows_of(ws_rows: torch.Tensor) -> list[list[torch.Tensor]]:
        rows = []
        for ws_content in ws_rows:
            row = []
            for start in range(0, count, batch_size):
                ws_view = candidates.ws[start:start + batch_size]
                row += list(render_view_content(G, ws_view, ws_content[None].expand_as(ws_view), view_layers))
                bar.update(len(ws_view))
            rows.append(row)
        return rows

    with bar:
        tiles = rows_of(ws_contents)
        pose_rows = tiles + rows_of(extra)
    guesses = guess_poses(pose_net, pose_rows) if pose_net is not None else None
    preselected = (preselect_views(guesses, preselect_per_bin, min_agreement) if guesses and preselect_per_bin > 0
                   else set())

    save_candidates(out / "candidates.safetensors", candidates, generator_path)
    save_png(out / "sheet.png", candidate_sheet(tiles, [str(view_id) for view_id in range(count)]))
    write_text(out / "views.toml", annotation_template(generator_path, "candidates.safetensors", count, view_layers,
                                                       guesses, preselected, min_agreement))
    return candidates, guesses
