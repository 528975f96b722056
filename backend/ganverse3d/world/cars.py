"""Parametric procedural cars: textured triangle meshes with part labels.

A car is built from a :class:`CarSpec` (body type, metric parameters, colours) sampled from a seeded
``numpy.random.Generator``; building is deterministic, so a spec (which is JSON-able) reproduces its car.

Geometry, in metres while building:

* The body is a loft: a fixed number of cross-section rings (``NUM_STATIONS``) placed along the car.
  Each ring is a rounded section - floor, rounded sill, slightly bulging side, belt line, greenhouse
  narrowing toward the roof (tumblehome), rounded roof edge, crowned top - whose heights follow a
  side profile (nose, hood, windshield, roof, rear window, trunk or pickup bed, tail) with filleted
  corners, whose widths follow a plan view with rounded ends, whose floor rises into wheel arches and
  whose roof edges rise into fenders over the wheels. Both ends are capped, so the body is closed.
* Window faces are the glass bands of the cabin: the windshield and rear window across the top between
  the pillars, the side windows between belt line and roof rail (broken by a B pillar).
* Four wheels are closed cylinders with rounded tyre shoulders; the outer disk is textured with a rim.
* Head lights, grille and front plate are thin closed slabs standing slightly proud of the front face,
  tail lights and rear plate of the rear face; two closed slabs are the side mirrors.

Every car of every body type has the same topology: the same vertex count and the same face list
(:func:`car_faces`), only vertex positions, UVs, labels and texture differ. Cars therefore batch directly
into the renderer's shared-faces layout (``verts [B, V, 3]``, ``faces [F, 3]``).

Object space (docs/ARCHITECTURE.md): +Y up, the front faces +Z, faces counter-clockwise seen from outside. Each car
is centred on its bounding box and scaled isotropically so that its farthest vertex lies at radius
``UNIT_SPHERE_RADIUS`` (0.95): every car fits the unit sphere with the same margin and keeps its
proportions; its metric size stays in ``params["length"]`` etc. and ``params["scale"]`` (object units
per metre). The wheels touch the ground plane ``y = Car.ground_y`` (< 0, differs per car).

Colour comes from a ``TEXTURE_SIZE``² atlas per car (:data:`TEXTURE_REGIONS`: paint with a gradient,
noise and door gaps, glass, tyre, rim, white head lights, red tail lights, plate, grille, dark trim). UVs are per face
vertex, (0, 0) = the top-left of the texture, v grows downward (glTF).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch

PART_LABELS = ("body", "window", "wheel", "headlight", "taillight", "plate")
BODY, WINDOW, WHEEL, HEADLIGHT, TAILLIGHT, PLATE = range(len(PART_LABELS))

BODY_TYPES = ("sedan", "hatchback", "suv", "pickup", "sports")

TEXTURE_SIZE = 128
UNIT_SPHERE_RADIUS = 0.95

# Atlas regions as (left, top, right, bottom) in texels of the TEXTURE_SIZE x TEXTURE_SIZE texture.
TEXTURE_REGIONS = {
    "paint": (0, 0, 64, 64),
    "glass": (64, 0, 96, 32),
    "tyre": (96, 0, 128, 32),
    "rim": (64, 32, 128, 96),
    "headlight": (0, 64, 16, 80),
    "taillight": (16, 64, 32, 80),
    "plate": (32, 64, 64, 80),
    "grille": (0, 80, 32, 96),
    "trim": (32, 80, 64, 96),
}
_REGION_NAMES = tuple(TEXTURE_REGIONS)
_REGION = {name: index for index, name in enumerate(_REGION_NAMES)}

# Ring (cross-section) layout: RING_HALF points from the bottom centre up the right (+X) side to the top
# centre, then the left side mirrored, without repeating the two centre points.
_RING_HALF = 14
RING_SIZE = 2 * _RING_HALF - 2
# Right-half band index (segment from point j to j + 1) of the side glass and of the top glass.
_SIDE_GLASS_BAND = 6
_TOP_GLASS_BANDS = (10, 11, 12)
_FLOOR_BAND = 0
_BED_BANDS = (11, 12)

_WHEEL_SEGMENTS = 16  # a multiple of 4, so that one vertex of each wheel is exactly at the bottom
_ARCH_OFFSETS = (-1.0, -0.97, -0.8, -0.45, 0.0, 0.45, 0.8, 0.97, 1.0)  # x wheel-arch radius
_PROFILE_POINTS = 20
NUM_STATIONS = _PROFILE_POINTS + 2 * len(_ARCH_OFFSETS) + 2 + 1 + 2  # + B pillar, C pillar end, bed walls

# Uniform ranges per body type, metres unless noted. The five segment lengths (hood .. trunk) are
# rescaled together to sum to the sampled length; "*_ratio"/"*_share"/"belt"/"b_pillar"/"c_pillar" are
# fractions (see _profile).
_RANGES = {
    "sedan": dict(
        length=(4.4, 5.0), width=(1.75, 1.9), height=(1.38, 1.5), ride_height=(0.14, 0.2),
        wheel_radius=(0.31, 0.35), wheel_width=(0.2, 0.25), wheelbase_ratio=(0.56, 0.61),
        front_overhang_share=(0.42, 0.5), nose_height=(0.6, 0.7), hood_height=(0.88, 0.98),
        hood_length=(1.05, 1.3), windshield_length=(0.65, 0.85), roof_length=(1.05, 1.35),
        rear_window_length=(0.5, 0.75), trunk_length=(0.8, 1.1), deck_height=(0.96, 1.08),
        tail_drop=(0.03, 0.1), belt=(0.06, 0.16), tumblehome=(0.12, 0.2), crown=(0.02, 0.05),
        bed_depth=(0.0, 0.0), b_pillar=(0.4, 0.55), c_pillar=(0.15, 0.45),
        taper_front=(0.08, 0.15), taper_rear=(0.05, 0.12)),
    "hatchback": dict(
        length=(3.7, 4.3), width=(1.65, 1.8), height=(1.42, 1.55), ride_height=(0.13, 0.18),
        wheel_radius=(0.29, 0.33), wheel_width=(0.18, 0.22), wheelbase_ratio=(0.6, 0.65),
        front_overhang_share=(0.5, 0.6), nose_height=(0.6, 0.7), hood_height=(0.88, 0.97),
        hood_length=(0.75, 0.95), windshield_length=(0.7, 0.85), roof_length=(0.9, 1.25),
        rear_window_length=(0.3, 0.5), trunk_length=(0.08, 0.15), deck_height=(0.95, 1.05),
        tail_drop=(0.0, 0.05), belt=(0.06, 0.16), tumblehome=(0.1, 0.18), crown=(0.02, 0.05),
        bed_depth=(0.0, 0.0), b_pillar=(0.45, 0.6), c_pillar=(0.1, 0.4),
        taper_front=(0.08, 0.15), taper_rear=(0.04, 0.1)),
    "suv": dict(
        length=(4.3, 4.9), width=(1.8, 1.95), height=(1.62, 1.85), ride_height=(0.2, 0.26),
        wheel_radius=(0.36, 0.41), wheel_width=(0.23, 0.28), wheelbase_ratio=(0.57, 0.61),
        front_overhang_share=(0.45, 0.52), nose_height=(0.8, 0.92), hood_height=(1.02, 1.15),
        hood_length=(0.95, 1.2), windshield_length=(0.55, 0.7), roof_length=(1.6, 2.1),
        rear_window_length=(0.12, 0.28), trunk_length=(0.1, 0.25), deck_height=(1.05, 1.2),
        tail_drop=(0.0, 0.05), belt=(0.04, 0.12), tumblehome=(0.08, 0.14), crown=(0.01, 0.03),
        bed_depth=(0.0, 0.0), b_pillar=(0.35, 0.45), c_pillar=(0.5, 0.9),
        taper_front=(0.06, 0.12), taper_rear=(0.03, 0.08)),
    "pickup": dict(
        length=(5.0, 5.7), width=(1.85, 2.0), height=(1.75, 1.95), ride_height=(0.24, 0.3),
        wheel_radius=(0.38, 0.43), wheel_width=(0.25, 0.3), wheelbase_ratio=(0.58, 0.63),
        front_overhang_share=(0.4, 0.48), nose_height=(0.95, 1.05), hood_height=(1.12, 1.25),
        hood_length=(1.3, 1.6), windshield_length=(0.5, 0.65), roof_length=(1.0, 1.5),
        rear_window_length=(0.05, 0.1), trunk_length=(1.5, 2.0), deck_height=(1.08, 1.22),
        tail_drop=(0.0, 0.01), belt=(0.03, 0.1), tumblehome=(0.06, 0.12), crown=(0.01, 0.02),
        bed_depth=(0.42, 0.55), b_pillar=(0.45, 0.6), c_pillar=(0.0, 0.0),
        taper_front=(0.04, 0.08), taper_rear=(0.0, 0.03)),
    "sports": dict(
        length=(4.2, 4.7), width=(1.85, 1.98), height=(1.12, 1.28), ride_height=(0.1, 0.13),
        wheel_radius=(0.31, 0.35), wheel_width=(0.24, 0.3), wheelbase_ratio=(0.56, 0.6),
        front_overhang_share=(0.42, 0.5), nose_height=(0.5, 0.58), hood_height=(0.74, 0.84),
        hood_length=(1.1, 1.4), windshield_length=(0.85, 1.05), roof_length=(0.6, 0.9),
        rear_window_length=(0.8, 1.1), trunk_length=(0.3, 0.6), deck_height=(0.86, 0.96),
        tail_drop=(0.03, 0.08), belt=(0.1, 0.22), tumblehome=(0.15, 0.25), crown=(0.03, 0.06),
        bed_depth=(0.0, 0.0), b_pillar=(0.75, 0.9), c_pillar=(0.2, 0.5),
        taper_front=(0.1, 0.18), taper_rear=(0.06, 0.12)),
}
_LIGHT_RANGES = {"sedan": ((0.24, 0.36), (0.07, 0.12)), "hatchback": ((0.22, 0.32), (0.08, 0.13)),
                 "suv": ((0.24, 0.34), (0.1, 0.16)), "pickup": ((0.24, 0.32), (0.12, 0.2)),
                 "sports": ((0.26, 0.38), (0.05, 0.09))}
for _body_type, (_width, _height) in _LIGHT_RANGES.items():
    _RANGES[_body_type].update(light_width=_width, light_height=_height)
_SEGMENTS = ("hood_length", "windshield_length", "roof_length", "rear_window_length", "trunk_length")

# Paint colours (sRGB, 0-1) with sampling weights roughly like the colours of cars on the road.
_PAINTS = (
    ((0.92, 0.92, 0.9), 0.2), ((0.08, 0.08, 0.09), 0.17), ((0.66, 0.67, 0.69), 0.15), ((0.4, 0.41, 0.43), 0.12),
    ((0.68, 0.08, 0.07), 0.09), ((0.1, 0.22, 0.55), 0.08), ((0.05, 0.09, 0.22), 0.05), ((0.12, 0.33, 0.2), 0.03),
    ((0.93, 0.74, 0.08), 0.03), ((0.9, 0.4, 0.06), 0.03), ((0.72, 0.64, 0.5), 0.03), ((0.35, 0.22, 0.14), 0.02),
)
_RIM_COLOURS = ((0.78, 0.79, 0.8), (0.55, 0.56, 0.58), (0.18, 0.18, 0.19), (0.7, 0.6, 0.35))


@dataclass(frozen=True)
class CarSpec:
    """Everything that determines a car, JSON-able (see :meth:`to_json`).

    Attributes:
        body_type: one of :data:`BODY_TYPES`.
        params: metric shape parameters (metres, or fractions where named so in ``_RANGES``), after the
            segment lengths were rescaled to the length; includes derived ``wheelbase``.
        paint: body colour, sRGB in [0, 1].
        glass: glass tint, sRGB.
        rim: rim colour, sRGB.
        rim_spokes: number of rim spokes.
        plate_yellow: whether the plates are yellow (else white).
        texture_seed: seed of the paint / tyre noise.
    """

    body_type: str
    params: dict
    paint: tuple
    glass: tuple
    rim: tuple
    rim_spokes: int
    plate_yellow: bool
    texture_seed: int

    def to_json(self) -> dict:
        return {"body_type": self.body_type, "params": dict(self.params), "paint": list(self.paint),
                "glass": list(self.glass), "rim": list(self.rim), "rim_spokes": self.rim_spokes,
                "plate_yellow": self.plate_yellow, "texture_seed": self.texture_seed}


@dataclass
class Car:
    """A textured car mesh in object space (see the module docstring for conventions).

    Attributes:
        verts: [V, 3] float32.
        faces: [F, 3] int64, counter-clockwise from outside; identical for every car (:func:`car_faces`).
        face_uvs: [F, 3, 2] float32 UVs into ``texture``.
        texture: [3, TEXTURE_SIZE, TEXTURE_SIZE] float32 in [0, 1].
        part_labels: [F] int64 indices into :data:`PART_LABELS`.
        body_type: one of :data:`BODY_TYPES`.
        params: the spec's metric parameters plus ``scale`` (object units per metre).
        ground_y: the ground plane height in object space; the wheels' lowest vertices lie on it.
        spec: the spec it was built from.
    """

    verts: torch.Tensor
    faces: torch.Tensor
    face_uvs: torch.Tensor
    texture: torch.Tensor
    part_labels: torch.Tensor
    body_type: str
    params: dict
    ground_y: float
    spec: CarSpec = field(repr=False)


def sample_car_spec(rng: np.random.Generator, body_type: str | None = None, fixed: dict | None = None) -> CarSpec:
    """Draw a car: a body type (uniform unless given), its parameters and colours.

    ``fixed``: parameters (of the body type's ranges, e.g. ``length``, ``width``, ``height``) given instead of
    drawn, inside the ranges or not: how a test makes cars of proportions the world never samples. The draws
    are the same either way, so the rest of the car is the one the same ``rng`` gives without them.
    """
    if body_type is None:
        body_type = BODY_TYPES[int(rng.integers(len(BODY_TYPES)))]
    if body_type not in _RANGES:
        raise ValueError(f"Unknown body type {body_type!r}; expected one of {', '.join(BODY_TYPES)}.")
    params = {name: float(rng.uniform(low, high)) for name, (low, high) in _RANGES[body_type].items()}
    unknown = set(fixed or {}) - set(params)
    if unknown:
        raise ValueError(f"Unknown car parameters {sorted(unknown)}; expected some of {sorted(params)}.")
    params.update(fixed or {})
    segment_scale = params["length"] / sum(params[name] for name in _SEGMENTS)
    for name in _SEGMENTS:
        params[name] *= segment_scale
    params["wheelbase"] = params["length"] * params["wheelbase_ratio"]

    weights = np.array([weight for _, weight in _PAINTS])
    base = np.array(_PAINTS[int(rng.choice(len(_PAINTS), p=weights / weights.sum()))][0])
    # Jitter brightness and hue a little so that two "red" cars differ.
    paint = np.clip(base * rng.uniform(0.85, 1.1) + rng.normal(0.0, 0.025, 3), 0.02, 0.97)
    glass = np.clip(np.array([0.1, 0.13, 0.17]) + rng.normal(0.0, 0.02, 3), 0.02, 0.4)
    rim = np.array(_RIM_COLOURS[int(rng.integers(len(_RIM_COLOURS)))])
    return CarSpec(
        body_type=body_type, params=params, paint=tuple(float(c) for c in paint),
        glass=tuple(float(c) for c in glass), rim=tuple(float(c) for c in rim),
        rim_spokes=int(rng.choice((5, 6, 7, 10))), plate_yellow=bool(rng.random() < 0.2),
        texture_seed=int(rng.integers(2**31)))


def sample_car(rng: np.random.Generator, body_type: str | None = None) -> Car:
    """Sample a spec and build its car."""
    return build_car(sample_car_spec(rng, body_type))


# ---------------------------------------------------------------------------------------------------
# Mesh assembly
# ---------------------------------------------------------------------------------------------------


class _MeshBuilder:
    """Accumulates closed parts: vertices, faces and per-face label, atlas region and local UVs."""

    def __init__(self):
        self.verts, self.faces, self.labels, self.regions, self.local_uvs = [], [], [], [], []
        self.num_verts = 0

    def add(self, verts, faces, labels, regions, local_uvs):
        """verts [N, 3]; faces [F, 3] indexing ``verts``; labels, regions [F] (or scalars); local_uvs
        [F, 3, 2] in [0, 1] within the face's atlas region."""
        count = len(faces)
        self.verts.append(np.asarray(verts, dtype=np.float64))
        self.faces.append(np.asarray(faces, dtype=np.int64) + self.num_verts)
        self.labels.append(np.broadcast_to(np.asarray(labels, dtype=np.int64), (count,)))
        self.regions.append(np.broadcast_to(np.asarray(regions, dtype=np.int64), (count,)))
        self.local_uvs.append(np.asarray(local_uvs, dtype=np.float64))
        self.num_verts += len(verts)

    def arrays(self):
        return tuple(np.concatenate(parts) for parts in
                     (self.verts, self.faces, self.labels, self.regions, self.local_uvs))


@functools.lru_cache(maxsize=None)
def _loft_faces(num_rings: int, ring_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces of a closed loft through ``num_rings`` rings of ``ring_size`` points.

    Vertex layout: ring i point j at ``i * ring_size + j``, then the start-cap centre, then the end-cap
    centre. Rings must run counter-clockwise seen from outside the start cap (looking along the loft);
    faces then point outward. Returns faces [F, 3], each face's segment index [F] (-1 start cap, -2 end
    cap) and band index [F] (ring point j of the quad's first edge).
    """
    segment, band = np.meshgrid(np.arange(num_rings - 1), np.arange(ring_size), indexing="ij")
    segment, band = segment.reshape(-1), band.reshape(-1)
    a = segment * ring_size + band
    b = segment * ring_size + (band + 1) % ring_size
    c = b + ring_size
    d = a + ring_size
    quads = np.stack((np.stack((a, c, b), -1), np.stack((a, d, c), -1)), 1).reshape(-1, 3)
    start, end = num_rings * ring_size, num_rings * ring_size + 1
    j = np.arange(ring_size)
    last = (num_rings - 1) * ring_size
    start_cap = np.stack((np.full(ring_size, start), j, (j + 1) % ring_size), -1)
    end_cap = np.stack((np.full(ring_size, end), last + (j + 1) % ring_size, last + j), -1)
    faces = np.concatenate((quads, start_cap, end_cap))
    segments = np.concatenate((np.repeat(segment, 2), np.full(ring_size, -1), np.full(ring_size, -2)))
    bands = np.concatenate((np.repeat(band, 2), j, j))
    for array in (faces, segments, bands):
        array.setflags(write=False)  # cached and shared by every car
    return faces, segments, bands


def _frame(normal) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A right-handed frame (u, v, n) with u x v = n and v = +Y, for a horizontal unit normal n."""
    n = np.asarray(normal, dtype=np.float64)
    return np.array([n[2], 0.0, -n[0]]), np.array([0.0, 1.0, 0.0]), n


def _add_slab(builder, centre, half_u, half_v, normal, proud, depth, label, region):
    """A closed box whose front face (facing ``normal``) stands ``proud`` in front of ``centre`` and whose
    back is ``depth`` behind it; the front face spans 2*half_u x 2*half_v and maps to the whole region."""
    u, v, n = _frame(normal)
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=np.float64)  # counter-clockwise from +n
    ring = centre + corners[:, :1] * half_u * u + corners[:, 1:] * half_v * v
    rings = np.stack((ring + proud * n, ring - depth * n))
    verts = np.concatenate((rings.reshape(-1, 3), [centre + proud * n, centre - depth * n]))
    faces, _, _ = _loft_faces(2, 4)
    local = np.concatenate(((corners + 1) / 2, (corners + 1) / 2, [[0.5, 0.5]] * 2))
    local[:, 1] = 1.0 - local[:, 1]  # texture rows grow downward, the slab's v grows upward
    builder.add(verts, faces, label, _REGION[region], local[faces])


def _add_wheel(builder, centre, radius, width, outward):
    """A closed wheel around an axis along ``outward`` (+-X): rim disk outside, tyre tread with rounded
    shoulders, plain inner disk. One vertex of every ring is exactly at the bottom (y = centre - radius)."""
    u, v, n = _frame(outward)
    angles = 2 * np.pi * np.arange(_WHEEL_SEGMENTS) / _WHEEL_SEGMENTS
    circle = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v
    shoulder = 0.25 * width
    profile = ((0.86, 0.5 * width), (0.97, 0.5 * width - 0.3 * shoulder), (1.0, 0.5 * width - shoulder),
               (1.0, -0.5 * width + shoulder), (0.97, -0.5 * width + 0.3 * shoulder), (0.86, -0.5 * width))
    rings = np.stack([centre + r * radius * circle + offset * n for r, offset in profile])
    verts = np.concatenate((rings.reshape(-1, 3), [centre + 0.5 * width * n, centre - 0.5 * width * n]))
    faces, segments, bands = _loft_faces(len(profile), _WHEEL_SEGMENTS)

    # Local UVs: the outer cap maps onto the rim disk image, the rest runs along the tyre strip image
    # (u around the wheel, v across the tread). u must not wrap back to 0 on the last segment's far edge.
    ring_point = faces % _WHEEL_SEGMENTS
    wraps = (bands[:, None] == _WHEEL_SEGMENTS - 1) & (ring_point == 0) & (segments[:, None] >= 0)
    strip_u = (ring_point + _WHEEL_SEGMENTS * wraps) / _WHEEL_SEGMENTS
    strip_v = np.concatenate((np.repeat(np.linspace(0, 1, len(profile)), _WHEEL_SEGMENTS), [0.0, 1.0]))[faces]
    local = np.stack((strip_u, strip_v), -1)
    disk = np.concatenate((np.tile(0.5 + 0.5 * np.stack((np.cos(angles), np.sin(angles)), -1), (len(profile), 1)),
                           [[0.5, 0.5], [0.5, 0.5]]))
    is_rim = segments == -1
    local[is_rim] = disk[faces[is_rim]]
    regions = np.where(is_rim, _REGION["rim"], _REGION["tyre"])
    builder.add(verts, faces, WHEEL, regions, local)


# ---------------------------------------------------------------------------------------------------
# Body
# ---------------------------------------------------------------------------------------------------


def _fillet(points: list, index: int, distance: float) -> list:
    """Replace corner ``points[index]`` by three points of a quadratic Bezier fillet ``distance`` long
    along each neighbouring edge (clamped to 40 % of the edges)."""
    corner = np.asarray(points[index])
    before, after = np.asarray(points[index - 1]), np.asarray(points[index + 1])
    start = corner + (before - corner) * min(0.4, distance / np.linalg.norm(before - corner))
    end = corner + (after - corner) * min(0.4, distance / np.linalg.norm(after - corner))
    middle = 0.25 * start + 0.5 * corner + 0.25 * end
    return points[:index] + [tuple(start), tuple(middle), tuple(end)] + points[index + 1:]


def _profile(p: dict) -> dict:
    """Side profile and key positions along the car, ``s`` = metres from the nose (front) backward."""
    length = p["length"]
    s_cowl = p["hood_length"]
    s_roof_front = s_cowl + p["windshield_length"]
    s_roof_rear = s_roof_front + p["roof_length"]
    s_deck = s_roof_rear + p["rear_window_length"]
    hood_front = p["nose_height"] + 0.08
    roof_rear_height = p["height"] - 0.04 * p["roof_length"]
    rear_top = p["deck_height"] - p["tail_drop"]
    # Top profile (s, y): nose face top, rounded nose, hood, cowl, windshield, roof, rear window, deck,
    # trunk lid, rounded tail.
    points = [(0.0, p["nose_height"]), (0.05, p["nose_height"] + 0.045), (0.16, hood_front - 0.01),
              (0.3, hood_front), (s_cowl, p["hood_height"]),
              (0.5 * (s_cowl + s_roof_front), 0.5 * (p["hood_height"] + p["height"]) + 0.03),
              (s_roof_front, p["height"]), (s_roof_rear, roof_rear_height),
              (0.5 * (s_roof_rear + s_deck), 0.5 * (roof_rear_height + p["deck_height"]) + 0.02),
              (s_deck, p["deck_height"]), (length - 0.05, rear_top), (length, rear_top - 0.035)]
    points = _fillet(points, 9, 0.12)   # deck
    points = _fillet(points, 7, 0.25)   # roof rear
    points = _fillet(points, 6, 0.25)   # roof front
    points = _fillet(points, 4, 0.1)    # cowl
    profile = np.array(points)
    assert len(profile) == _PROFILE_POINTS
    return dict(profile=profile, s_cowl=s_cowl, s_roof_front=s_roof_front, s_roof_rear=s_roof_rear,
                s_deck=s_deck, s_windshield_top=profile[9, 0], s_rear_window_top=profile[12, 0],
                s_deck_end=profile[17, 0])


def _body(builder, spec: CarSpec) -> dict:
    """Add the body loft; return the key positions the lights, plates and mirrors are placed by."""
    p = spec.params
    length, half_width = p["length"], 0.5 * p["width"]
    keys = _profile(p)
    profile = keys["profile"]
    front_overhang = (length - p["wheelbase"]) * p["front_overhang_share"]
    wheels_s = (front_overhang, front_overhang + p["wheelbase"])
    arch_radius = p["wheel_radius"] + 0.05
    s_b_pillar = keys["s_roof_front"] + p["b_pillar"] * (keys["s_roof_rear"] - keys["s_roof_front"])
    s_side_end = keys["s_roof_rear"] + p["c_pillar"] * (keys["s_deck"] - keys["s_roof_rear"])
    if p["c_pillar"] == 0.0:  # pickups: the side glass ends before the cab's rear edge
        s_side_end = keys["s_roof_rear"] - 0.12
    s_bed = (keys["s_deck_end"] + 0.05, length - 0.06)

    stations = np.concatenate((
        profile[:, 0],
        *[s + arch_radius * np.array(_ARCH_OFFSETS) for s in wheels_s],
        [s_b_pillar - 0.04, s_b_pillar + 0.04, s_side_end], s_bed))
    stations = np.clip(np.sort(stations), 0.0, length)
    # Coinciding stations would make zero-length segments; keep them strictly increasing.
    stations = np.maximum.accumulate(stations + 1e-4 * np.arange(len(stations)))
    stations *= length / stations[-1]
    assert len(stations) == NUM_STATIONS

    y_top = np.interp(stations, profile[:, 0], profile[:, 1])
    y_floor = np.interp(stations, [0.0, 0.25, length - 0.3, length],
                        p["ride_height"] + np.array([0.14, 0.02, 0.02, 0.16]))
    wheel_top_lift = np.zeros_like(stations)
    for s_wheel in wheels_s:
        offset = stations - s_wheel
        inside = np.abs(offset) < 0.985 * arch_radius
        arch = p["wheel_radius"] + np.sqrt(np.clip(arch_radius**2 - offset**2, 0.0, None))
        y_floor = np.where(inside, np.maximum(y_floor, arch), y_floor)
        # Fenders: the roof edge rises over the wheel where the body would be too thin above the arch.
        fender = p["wheel_radius"] + np.sqrt(np.clip((arch_radius + 0.1) ** 2 - offset**2, 0.0, None))
        wheel_top_lift = np.maximum(wheel_top_lift, fender - y_top)
    y_floor = np.minimum(y_floor, y_top - 0.15)
    # Plan view: rounded front and rear ends.
    w = (half_width - p["taper_front"] * np.clip(1 - stations / 0.6, 0, None) ** 2
         - p["taper_rear"] * np.clip(1 - (length - stations) / 0.5, 0, None) ** 2)
    belt = p["hood_height"] + p["belt"] * (p["height"] - p["hood_height"])
    cabin = np.clip((y_top - belt) / max(p["height"] - belt, 1e-6), 0.0, 1.0)
    w_top = w - 0.04 - p["tumblehome"] * cabin ** 0.7
    dip = np.where((stations > s_bed[0] - 1e-6) & (stations < s_bed[1] + 1e-6), p["bed_depth"], 0.0)
    dip = np.minimum(dip, y_top - y_floor - 0.05)  # the bed floor humps over the wheel arches
    crown = np.where(dip > 0, 0.0, p["crown"] * (0.5 + 0.5 * cabin))

    rings = _rings(y_floor, y_top, belt, w, w_top, dip, crown, np.clip(wheel_top_lift, 0.0, 0.12))
    z = -stations  # the front (s = 0) faces +Z
    verts = np.concatenate((
        np.stack((rings[..., 0], rings[..., 1], np.broadcast_to(z[:, None], rings.shape[:2])), -1).reshape(-1, 3),
        [(0.0, 0.5 * (y_floor[0] + y_top[0]), z[0]), (0.0, 0.5 * (y_floor[-1] + y_top[-1]), z[-1])]))
    faces, segments, bands = _loft_faces(NUM_STATIONS, RING_SIZE)

    # Labels and regions per face, from the segment's position along the car and the ring band.
    half_band = np.where(bands < _RING_HALF - 1, bands, RING_SIZE - 1 - bands)  # mirror the left half
    middle = np.where(segments >= 0, 0.5 * (stations[np.clip(segments, 0, None)]
                                            + stations[np.clip(segments + 1, 0, NUM_STATIONS - 1)]), -1.0)
    is_quad = segments >= 0
    top_glass = np.isin(half_band, _TOP_GLASS_BANDS) & is_quad & (
        ((middle > keys["s_cowl"]) & (middle < keys["s_windshield_top"]))
        | ((middle > keys["s_rear_window_top"]) & (middle < keys["s_deck"])))
    side_glass = (half_band == _SIDE_GLASS_BAND) & is_quad & (middle > keys["s_cowl"]) & (middle < s_side_end) & (
        np.abs(middle - s_b_pillar) > 0.04)
    window = top_glass | side_glass
    labels = np.where(window, WINDOW, BODY)
    bed = np.isin(half_band, _BED_BANDS) & is_quad & (dip[np.clip(segments, 0, None)] > 0) & ~window
    trim = ((half_band == _FLOOR_BAND) & is_quad) | bed
    regions = np.where(window, _REGION["glass"], np.where(trim, _REGION["trim"], _REGION["paint"]))

    # Local UVs from the vertex position: u along the car, v down from the roof.
    low, high = verts[:, 1].min(), verts[:, 1].max()
    vert_local = np.stack((-verts[:, 2] / length, (high - verts[:, 1]) / (high - low)), -1)
    # Glass spans its own gradient from the roof down to the belt line.
    glass_local = np.stack((vert_local[:, 0], np.clip((high - verts[:, 1]) / (high - belt), 0, 1)), -1)
    local = np.where(window[:, None, None], glass_local[faces], vert_local[faces])
    builder.add(verts, faces, labels, regions, local)
    windshield = (profile[:, 0] >= keys["s_cowl"]) & (profile[:, 0] <= keys["s_roof_front"])
    s_belt_cross = float(np.interp(belt + 0.05, profile[windshield, 1], profile[windshield, 0]))
    # Door gaps, painted into the paint region: where its u (along the car) and v (down from the roof) fall.
    door_edges = [s_belt_cross + 0.05, s_b_pillar]
    if spec.body_type != "sports":
        door_edges.append(max(s_side_end, keys["s_roof_rear"]) - 0.05)
    doors = dict(u=[edge / length for edge in door_edges], v_top=(high - belt - 0.02) / (high - low),
                 v_bottom=(high - p["ride_height"] - 0.12) / (high - low))
    return dict(wheels_s=wheels_s, front=(y_floor[0], y_top[0], w[0]), rear=(y_floor[-1], y_top[-1], w[-1]),
                belt=belt, s_belt_cross=s_belt_cross, w_at=lambda s: float(np.interp(s, stations, w)), doors=doors)


def _rings(y_floor, y_top, belt, w, w_top, dip, crown, lift) -> np.ndarray:
    """Cross-section rings [S, RING_SIZE, 2] as (x, y), counter-clockwise seen from the front (+Z)."""
    r_bottom = np.minimum(0.08, 0.3 * (y_top - y_floor))
    r_top = np.minimum(0.1, 0.25 * (y_top - y_floor))
    corner_y = y_top - r_top + lift                   # where the roof-edge rounding starts
    y_belt = np.minimum(belt, corner_y - 0.005)
    glass_bottom = np.minimum(y_belt + 0.04, corner_y)
    glass_top = np.maximum(glass_bottom, corner_y - 0.06)

    def side_x(y):  # the greenhouse side runs straight from the belt line to the roof-edge corner
        t = np.clip((y - y_belt) / np.maximum(corner_y - y_belt, 1e-6), 0.0, 1.0)
        return w + (w_top - w) * t

    x_flat = w_top - r_top                              # where the top flattens
    x_rail = np.where(dip > 0, x_flat - 0.07, 0.55 * x_flat)
    x_inner = x_rail - np.where(dip > 0, 0.01, 0.001)

    def top_y(x):  # crowned top, rising from the centre to the (fender-lifted) edge
        t = (x / np.maximum(x_flat, 1e-6)) ** 2
        return y_top + crown * (1 - t) + lift * t

    half = [
        (0 * w, y_floor),
        (w - r_bottom, y_floor),
        (w - 0.29 * r_bottom, y_floor + 0.29 * r_bottom),
        (w, y_floor + r_bottom),
        (w + 0.025, y_floor + r_bottom + 0.45 * (y_belt - y_floor - r_bottom)),  # the side bulges a little
        (w, y_belt),
        (side_x(glass_bottom), glass_bottom),
        (side_x(glass_top), glass_top),
        (w_top, corner_y),
        (w_top - 0.29 * r_top, corner_y + 0.71 * r_top),
        (x_flat, y_top + lift),
        (x_rail, top_y(x_rail)),
        (x_inner, top_y(x_inner) - dip),
        (0 * w, y_top + crown - dip),
    ]
    right = np.stack([np.stack(np.broadcast_arrays(x, y), -1) for x, y in half], 1)  # [S, 14, 2]
    left = right[:, -2:0:-1] * np.array([-1.0, 1.0])
    return np.concatenate((right, left), 1)


# ---------------------------------------------------------------------------------------------------
# Wheels, lights, plates, mirrors
# ---------------------------------------------------------------------------------------------------


def _add_fittings(builder, spec: CarSpec, body: dict) -> None:
    """Head lights, grille and front plate on the front face; tail lights and plate on the rear face;
    side mirrors at the base of the A pillars."""
    p = spec.params
    light_w, light_h = p["light_width"], p["light_height"]
    front, back = (0.0, 0.0, 1.0), (0.0, 0.0, -1.0)

    floor, top, w = body["front"]
    light_y = top - 0.05 - 0.5 * light_h
    for side in (1.0, -1.0):
        _add_slab(builder, np.array([side * (w - 0.07 - 0.5 * light_w), light_y, 0.0]),
                  0.5 * light_w, 0.5 * light_h, front, 0.012, 0.03, HEADLIGHT, "headlight")
    plate_y = floor + 0.095
    _add_slab(builder, np.array([0.0, plate_y, 0.0]), 0.26, 0.055, front, 0.016, 0.03, PLATE, "plate")
    grille_bottom, grille_top = plate_y + 0.075, top - 0.04
    grille_half_height = max(0.5 * (grille_top - grille_bottom), 0.03)
    _add_slab(builder, np.array([0.0, grille_bottom + grille_half_height, 0.0]),
              max(w - 0.1 - light_w, 0.15), grille_half_height, front, 0.006, 0.03, BODY, "grille")

    floor, top, w = body["rear"]
    if spec.body_type == "pickup":  # upright tail lights at the corners of the tailgate
        tail_w, tail_h = 0.1, min(0.3, 0.5 * (top - floor))
    else:
        tail_w, tail_h = light_w, 1.3 * light_h
    for side in (1.0, -1.0):
        _add_slab(builder, np.array([side * (w - 0.06 - 0.5 * tail_w), top - 0.04 - 0.5 * tail_h, -p["length"]]),
                  0.5 * tail_w, 0.5 * tail_h, back, 0.012, 0.03, TAILLIGHT, "taillight")
    _add_slab(builder, np.array([0.0, floor + 0.4 * (top - floor), -p["length"]]), 0.26, 0.055, back, 0.016, 0.03,
              PLATE, "plate")

    # Mirrors sit where the windshield rises past the belt line, on the door just below the side glass.
    s_mirror = body["s_belt_cross"] + 0.06
    for side in (1.0, -1.0):
        _add_slab(builder, np.array([side * body["w_at"](s_mirror), body["belt"] + 0.05, -s_mirror]),
                  0.06, 0.055, (side, 0.0, 0.0), 0.13, 0.03, BODY, "paint")


def build_car(spec: CarSpec) -> Car:
    """Build the textured, labelled, normalised mesh of ``spec`` (deterministic)."""
    builder = _MeshBuilder()
    body = _body(builder, spec)
    p = spec.params
    for s_wheel in body["wheels_s"]:
        x = body["w_at"](s_wheel) - 0.5 * p["wheel_width"] + 0.02  # tyres stand just proud of the body side
        for side in (1.0, -1.0):
            _add_wheel(builder, np.array([side * x, p["wheel_radius"], -s_wheel]), p["wheel_radius"],
                       p["wheel_width"], (side, 0.0, 0.0))
    _add_fittings(builder, spec, body)
    verts, faces, labels, regions, local = builder.arrays()

    centre = 0.5 * (verts.min(0) + verts.max(0))
    scale = UNIT_SPHERE_RADIUS / np.linalg.norm(verts - centre, axis=1).max()
    verts = (verts - centre) * scale

    rects = np.array([TEXTURE_REGIONS[name] for name in _REGION_NAMES], dtype=np.float64)[regions]  # [F, 4]
    # Keep UVs one texel inside their region so that bilinear sampling never blends a neighbour in.
    origin = rects[:, None, :2] + 1.0
    extent = rects[:, None, 2:] - rects[:, None, :2] - 2.0
    face_uvs = (origin + np.clip(local, 0.0, 1.0) * extent) / TEXTURE_SIZE

    params = dict(p, scale=float(scale))
    return Car(
        verts=torch.from_numpy(verts.astype(np.float32)), faces=torch.from_numpy(faces),
        face_uvs=torch.from_numpy(face_uvs.astype(np.float32)),
        texture=torch.from_numpy(_texture(spec, body["doors"])), part_labels=torch.from_numpy(labels.copy()),
        body_type=spec.body_type, params=params, ground_y=float(-centre[1] * scale), spec=spec)


# ---------------------------------------------------------------------------------------------------
# Texture atlas
# ---------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Value noise [height, width] in [-1, 1], bilinear between random values every ``cell`` texels."""
    coarse = rng.uniform(-1.0, 1.0, (height // cell + 2, width // cell + 2))

    def resample(values, size, axis):  # linear interpolation along one axis, ends aligned
        position = np.linspace(0, values.shape[axis] - 1, size)
        low = np.minimum(position.astype(np.int64), values.shape[axis] - 2)
        weight = position - low
        shape = [1, 1]
        shape[axis] = size
        return (np.take(values, low, axis) * (1 - weight.reshape(shape))
                + np.take(values, low + 1, axis) * weight.reshape(shape))

    return resample(resample(coarse, height, 0), width, 1)


def _region_view(atlas: np.ndarray, name: str) -> np.ndarray:
    left, top, right, bottom = TEXTURE_REGIONS[name]
    return atlas[top:bottom, left:right]


@functools.lru_cache(maxsize=None)
def _region_coords(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(v, u) [h, w, 1] in [0, 1] over a region: v down the rows, u across the columns."""
    left, top, right, bottom = TEXTURE_REGIONS[name]
    v, u = np.meshgrid(np.linspace(0, 1, bottom - top), np.linspace(0, 1, right - left), indexing="ij")
    return v[..., None], u[..., None]


@functools.lru_cache(maxsize=None)
def _fixed_texels() -> dict:
    """The regions every car shares: head lights, tail lights, grille."""
    texels = {}
    v, u = _region_coords("headlight")
    border = np.minimum(np.minimum(u, 1 - u), np.minimum(v, 1 - v)) < 0.15
    texels["headlight"] = np.where(border, 0.55, np.array([0.98, 0.97, 0.9]))
    v, u = _region_coords("taillight")
    border = np.minimum(np.minimum(u, 1 - u), np.minimum(v, 1 - v)) < 0.15
    texels["taillight"] = np.where(border, np.array([0.35, 0.02, 0.02]),
                                   np.array([0.85, 0.08, 0.06]) + 0.15 * np.exp(-(((v - 0.5) / 0.2) ** 2)))
    v, _ = _region_coords("grille")  # dark slats in a chrome frame
    grille = np.where((np.arange(v.shape[0]) % 3 == 0)[:, None, None], 0.2, 0.05) * np.ones((1, v.shape[1], 3))
    grille[[0, -1], :] = grille[:, [0, -1]] = 0.6
    texels["grille"] = grille
    return texels


@functools.lru_cache(maxsize=None)
def _rim_layout(spokes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rim disk image as ``metal * rim_colour + base`` (each [h, w, 1]): tyre sidewall outside, a lip,
    ``spokes`` spokes with dark gaps, a hub."""
    v, u = _region_coords("rim")
    radius = np.hypot(2 * u - 1, 2 * v - 1)
    angle = np.arctan2(2 * v - 1, 2 * u - 1)
    spoke = np.cos(spokes * angle) > 0.2 - 0.6 * np.clip((0.62 - radius) / 0.4, 0, 1) ** 3
    metal = np.where(spoke | (radius < 0.2), 0.9 + 0.15 * (1 - v), 0.0)
    base = np.where(spoke, 0.0, 0.04)
    metal = np.where(radius > 0.62, 1.05, metal)
    metal = np.where(radius < 0.07, 0.6, metal)
    metal, base = np.where(radius > 0.7, 0.0, metal), np.where(radius > 0.7, 0.09, base)
    return metal, base


def _texture(spec: CarSpec, doors: dict) -> np.ndarray:
    """The car's atlas, [3, TEXTURE_SIZE, TEXTURE_SIZE] float32 in [0, 1] (regions: TEXTURE_REGIONS).

    ``doors``: where door gaps go in the paint region, ``u`` (list) across it and ``v_top`` .. ``v_bottom``
    down it, in the body's local UV units (u = s / length, v from roof to floor)."""
    rng = np.random.default_rng(spec.texture_seed)
    paint, glass, rim = (np.array(c) for c in (spec.paint, spec.glass, spec.rim))
    atlas = np.empty((TEXTURE_SIZE, TEXTURE_SIZE, 3))
    atlas[:] = paint  # unused texels: paint, harmless if ever sampled

    # Paint: v = 0 at the roof, 1 at the floor. Tops catch the sky, sills are darker, a faint horizon
    # reflection runs along the flanks; low-frequency noise keeps large panels from looking flat.
    v, _ = _region_coords("paint")
    shade = 1.12 - 0.32 * v + 0.05 * np.exp(-(((v - 0.42) / 0.04) ** 2)) - 0.04 * np.exp(-(((v - 0.47) / 0.03) ** 2))
    noise = _smooth_noise(rng, v.shape[0], v.shape[1], 8)[..., None]
    paint_texels = _region_view(atlas, "paint")
    paint_texels[:] = paint * shade + 0.02 * noise
    # Door gaps: thin darker lines on the flanks, and a darker handle just under the belt line.
    height, width = paint_texels.shape[:2]
    rows = slice(int(doors["v_top"] * (height - 2)) + 1, int(doors["v_bottom"] * (height - 2)) + 2)
    for u in doors["u"]:
        column = int(round(u * (width - 2))) + 1
        paint_texels[rows, column] *= 0.6
    handle_row = int((doors["v_top"] + 0.05) * (height - 2)) + 1
    for u in doors["u"][:-1]:
        column = int(round(u * (width - 2))) + 1
        paint_texels[handle_row, column + 3:column + 5] *= 0.7

    v, u = _region_coords("glass")  # darker toward the bottom, a diagonal sky reflection
    _region_view(atlas, "glass")[:] = glass * (1.6 - 1.0 * v) + 0.06 * np.exp(-(((u + 0.6 * v - 0.6) / 0.12) ** 2))

    for name, level, spread in (("tyre", 0.07, 0.012), ("trim", 0.08, 0.01)):
        texels = _region_view(atlas, name)
        texels[:] = level + spread * _smooth_noise(rng, texels.shape[0], texels.shape[1], 4)[..., None]

    metal, base = _rim_layout(spec.rim_spokes)
    _region_view(atlas, "rim")[:] = metal * rim + base

    for name, texels in _fixed_texels().items():
        _region_view(atlas, name)[:] = texels

    texels = _region_view(atlas, "plate")  # plain plate, a dark border and a row of dark glyph blocks
    height = texels.shape[0]
    texels[:] = np.array([0.95, 0.8, 0.15]) if spec.plate_yellow else 0.93
    texels[[0, -1], :] = texels[:, [0, -1]] = 0.1
    glyphs = rng.random((height - 8, 7)) < 0.6
    for index in range(7):
        column = texels[4:height - 4, 4 + 4 * index:7 + 4 * index]
        column[:] = np.where(glyphs[:, index:index + 1, None], 0.1, column)

    return np.ascontiguousarray(np.clip(atlas, 0.0, 1.0).transpose(2, 0, 1), dtype=np.float32)


@functools.lru_cache(maxsize=None)
def car_faces() -> torch.Tensor:
    """The face list [F, 3] int64 shared by every car (all body types have one topology)."""
    return sample_car(np.random.default_rng(0), "sedan").faces


def batch_cars(cars: list[Car]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack cars for the renderer: verts [B, V, 3], faces [F, 3] (shared), face_uvs [B, F, 3, 2],
    textures [B, 3, Ht, Wt], part_labels [B, F]."""
    faces = cars[0].faces
    if any(car.faces.shape != faces.shape or not torch.equal(car.faces, faces) for car in cars[1:]):
        raise ValueError("Cars of one batch must share their face list (all built by build_car).")
    return (torch.stack([car.verts for car in cars]), faces, torch.stack([car.face_uvs for car in cars]),
            torch.stack([car.texture for car in cars]), torch.stack([car.part_labels for car in cars]))
