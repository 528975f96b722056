"""Wheels of a part-labelled car mesh: find the four wheels, build proper wheel meshes, pull the body's wheel blobs in,
read the tyres' and rims' colours from the photo.

Pure math on numpy arrays (torch tensors are accepted and read as numpy). Conventions (docs/ARCHITECTURE.md):

* Object space: +Y up, the car's front towards +Z, the axles along x. The car's LEFT is +x: forward (+Z) x up
  (+Y) = -X is its right. In Blender's frame ((x, y, z) -> (x, -z, y), ``geometry.camera.object_to_blender``)
  the front is -Y and the left stays +X, as the worker's mesh.json contract says.
* Part ids are ``world.cars.PART_LABELS`` indices; only the wheel id (:data:`WHEEL_LABEL`) and the body id
  (:data:`BODY_LABEL`) matter here.
* A wheel's own frame (:func:`wheel_mesh`): origin at the hub, axes parallel to the car's, so local +X runs along
  the axle towards the car's left. The rim is on the wheel's outer side: +X for a left wheel, -X for a right one
  (the right wheel's mesh is the left one mirrored), so all four wheels take the identity rest rotation.

Why the fitting looks the way it does: a reconstruction is a 642-vertex sphere pushed into the car's shape, its
part labels are predicted and blotchy, and only the outer, lower part of each wheel is on its surface (the top
hides in the arch, the inner side in the body). So each wheel's region is seen from the side (y, z) as a
disk: its area-weighted centre and spread give the hub's place along the car and a first radius, which grows
when the region takes in faces beyond the tyre; the height of that centre above the car's lowest point (wheels
touch the ground) gives a second, which shrinks when the arch hides the tyre's top; the fit takes their
geometric mean. The axle's outer end is the region's outermost x. Cars are left/right symmetric, so mirrored
pairs are averaged, and a wheel with too few labelled faces is its partner mirrored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The part ids: world.cars.PART_LABELS, restated here because geometry, export and the worker sit below the world
# (tests/geometry/test_wheels.py pins the two equal).
PART_NAMES = ("body", "window", "wheel", "headlight", "taillight", "plate")
BODY_LABEL, WHEEL_LABEL = PART_NAMES.index("body"), PART_NAMES.index("wheel")

WHEEL_NAMES = {(True, True): "wheel_front_left", (True, False): "wheel_front_right",
               (False, True): "wheel_rear_left", (False, False): "wheel_rear_right"}

# Fewer labelled faces than this on one wheel and it counts as missing (mirrored, or from the prior).
MIN_WHEEL_FACES = 3
# The prior used where whole axles have no wheel faces, in shares of the car's length L (its extent along z),
# measured on the procedural world (ganverse3d.world.cars, 20 cars of each of the 5 body types, seeds 0-19):
# front hub 0.191 L behind the front (sd 0.015), rear hub 0.213 L ahead of the rear (sd 0.025), radius
# 0.075 L (sd 0.006), tyre width 0.053 L (sd 0.006), the wheel's centre plane 0.050 L inside the car's side
# (sd 0.004). Real cars agree (a 4.8 m sedan: 0.95 m front overhang = 0.2 L, 0.33 m wheel radius = 0.07 L).
PRIOR_FRONT_HUB_SHARE = 0.191
PRIOR_REAR_HUB_SHARE = 0.213
PRIOR_RADIUS_SHARE = 0.075
PRIOR_WIDTH_SHARE = 0.053
PRIOR_INSET_SHARE = 0.050
# Tyre width over radius stays in this range on road cars (a 205/55 R16 tyre: 0.65) and in the world (0.57-0.97);
# the labelled region's width along the axle says little (its inner side hides in the body), so it is clamped.
WIDTH_OVER_RADIUS = (0.45, 1.0)
_TYPICAL_WIDTH_OVER_RADIUS = 0.7  # the world's mean (0.71)
# Wheel faces whose centres lie farther along the car than this share of L from their wheel's median are strays.
_STRAY_SHARE = 0.12


@dataclass
class Wheel:
    """One wheel in object space (units of the mesh).

    Attributes:
        name: ``wheel_{front|rear}_{left|right}`` (:data:`WHEEL_NAMES`).
        centre: [3] float64, the hub: the middle of the wheel on its axle.
        radius: tyre radius (> 0).
        width: tyre width along the axle (> 0).
        front: on the front axle (+z side of the car's middle).
        left: on the car's left (+x).
        source: how it was found: ``"fitted"`` (its own labelled faces, averaged with its mirrored partner when
            that was fitted too), ``"mirrored"`` (its partner on the other side, mirrored: it had too few faces),
            ``"prior"`` (its whole axle had too few faces: position from the bounding-box prior, see
            :data:`PRIOR_FRONT_HUB_SHARE`, size from the other axle or the prior).
    """

    name: str
    centre: np.ndarray
    radius: float
    width: float
    front: bool
    left: bool
    source: str

    @property
    def outward(self) -> float:
        """+1 for a left wheel (its outer side faces +x), -1 for a right one."""
        return 1.0 if self.left else -1.0

    @property
    def inner_x(self) -> float:
        """|x| of the wheel's inner face, the side towards the car's centre plane."""
        return abs(float(self.centre[0])) - 0.5 * self.width


def _numpy(array, dtype) -> np.ndarray:
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=dtype)


def fit_wheels(verts, faces, part_labels) -> list[Wheel]:
    """Four wheels from the wheel-labelled faces of a car mesh.

    Args:
        verts: [V, 3] positions in object space (+Y up, front +Z, axles along x).
        faces: [F, 3] vertex indices.
        part_labels: [F] part ids (:data:`WHEEL_LABEL` marks wheels).

    Returns:
        The wheels front-left, front-right, rear-left, rear-right, left/right symmetric (mirror images in x=0).
        Wheel faces split by side (sign of x) and by end (z against the middle of the car's z extent); faces
        farther than 0.12 L along z from their group's median are stray labels. For each wheel with at least
        :data:`MIN_WHEEL_FACES` faces, seen from the side (:func:`_side_view_disk`, projected-area moments):
        the hub's z is the region's mean z, the radius the geometric mean of twice its z standard deviation
        and the height of its mean y above the car's lowest vertex; the hub stands one radius above that
        vertex (wheels touch the ground); the tyre's outer face is the region's outermost |x|, its width the
        region's |x| range when that lies within :data:`WIDTH_OVER_RADIUS` times the radius, else 0.7 radii (a reconstruction's region seldom shows the tyre's inner side). Then each
        left/right pair is averaged (or mirrored from the one found), and an axle with neither comes from the
        prior (see :class:`Wheel`.source).

    Raises:
        ValueError: shapes disagree, or the mesh has no extent.
    """
    verts = _numpy(verts, np.float64)
    faces = _numpy(faces, np.int64)
    part_labels = _numpy(part_labels, np.int64)
    if verts.ndim != 2 or verts.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"verts must be [V, 3] and faces [F, 3]; got {list(verts.shape)} and {list(faces.shape)}.")
    if part_labels.shape != (faces.shape[0],):
        raise ValueError(f"part_labels must have shape [F] = [{faces.shape[0]}]; got {list(part_labels.shape)}.")
    low, high = verts.min(axis=0), verts.max(axis=0)
    length = float(high[2] - low[2])
    if not length > 0:
        raise ValueError("the mesh has no extent along its length axis (z).")
    ground, middle_z = float(low[1]), 0.5 * float(low[2] + high[2])

    triangles = verts[faces[part_labels == WHEEL_LABEL]]  # [W, 3 corners, 3]
    centroids = triangles.mean(axis=1)
    found: dict[tuple[bool, bool], tuple[float, float, float, float]] = {}  # (front, left) -> (|x|, z, r, width)
    for (front, left) in WHEEL_NAMES:
        chosen = ((centroids[:, 2] > middle_z) == front) & ((centroids[:, 0] > 0) == left)
        if int(chosen.sum()) < MIN_WHEEL_FACES:
            continue
        chosen &= np.abs(centroids[:, 2] - np.median(centroids[chosen, 2])) <= _STRAY_SHARE * length
        if int(chosen.sum()) < MIN_WHEEL_FACES:  # two clusters apart: the median fell between them
            continue
        z, y, spread_radius = _side_view_disk(triangles[chosen])
        # Two radii, both exact for a fully labelled wheel: the spread along z grows when the region takes in
        # faces beyond the tyre, the side-view centre's height above the ground shrinks when the arch hides the
        # tyre's top. Their geometric mean cancels most of both (benchmarks/bm_wheels.py, "template").
        radius = math.sqrt(spread_radius * (y - ground)) if y > ground else spread_radius
        if not radius > 0:
            continue
        side_x = np.abs(triangles[chosen][..., 0]).reshape(-1)
        width = float(np.ptp(side_x))
        low_width, high_width = (share * radius for share in WIDTH_OVER_RADIUS)
        if not low_width <= width <= high_width:  # the region does not show the tyre's width: a typical one
            width = _TYPICAL_WIDTH_OVER_RADIUS * radius
        found[front, left] = (float(side_x.max()) - 0.5 * width, z, radius, width)

    axles: dict[bool, tuple[tuple[float, float, float, float], str]] = {}
    for front in (True, False):
        sides = [found[front, left] for left in (True, False) if (front, left) in found]
        if sides:
            axles[front] = (tuple(float(np.mean(values)) for values in zip(*sides)), "fitted" if len(sides) == 2
                            else "mirrored")
    for front in (True, False):
        if front in axles:
            continue
        half_width = 0.5 * float(high[0] - low[0])
        if axles:  # the other axle gives the size; the prior, how far from the car's end the axle sits
            _, _, radius, width = axles[not front][0]
        else:
            radius, width = PRIOR_RADIUS_SHARE * length, PRIOR_WIDTH_SHARE * length
        z = (float(high[2]) - PRIOR_FRONT_HUB_SHARE * length if front
             else float(low[2]) + PRIOR_REAR_HUB_SHARE * length)
        axles[front] = ((half_width - PRIOR_INSET_SHARE * length, z, radius, width), "prior")

    wheels = []
    for (front, left), name in WHEEL_NAMES.items():
        (x, z, radius, width), source = axles[front]
        if source == "mirrored" and (front, left) in found:
            source = "fitted"
        wheels.append(Wheel(name=name, centre=np.array([x if left else -x, ground + radius, z]), radius=radius,
                            width=width, front=front, left=left, source=source))
    return wheels


def _side_view_disk(triangles: np.ndarray) -> tuple[float, float, float]:
    """(z, y, radius) of the centre and radius of the disk that triangles [N, 3, 3] make seen from the side.

    The triangles' projections onto the y-z plane are weighted by their projected areas; the z and y means and
    the z variance are exact integrals over the projected triangles. A disk of radius r has a z variance of
    r^2 / 4, and so has any part of it cut off by a horizontal line through its centre, so a wheel whose top
    hides in the arch still measures right; unlike the region's extent, the moments do not grow with the size
    of the faces that stick out of a coarse mesh's wheel region (they still grow with the region's area). A
    region seen edge-on has no projected area: then the middles and half of its z range.
    """
    edges = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    weights = 0.5 * np.abs(edges[:, 0])  # projected area on the y-z plane
    z, y = triangles[..., 2], triangles[..., 1]
    if not weights.sum() > 1e-12:
        return 0.5 * float(z.min() + z.max()), 0.5 * float(y.min() + y.max()), 0.5 * float(np.ptp(z))
    mean_z = float((weights * z.mean(axis=1)).sum() / weights.sum())
    mean_y = float((weights * y.mean(axis=1)).sum() / weights.sum())
    # Over a triangle with corner values a, b, c: the mean of z^2 is (a^2 + b^2 + c^2 + ab + bc + ca) / 6.
    second = (weights * ((z ** 2).sum(axis=1) + (z * np.roll(z, 1, axis=1)).sum(axis=1)) / 6.0).sum() / weights.sum()
    return mean_z, mean_y, 2.0 * math.sqrt(max(float(second) - mean_z ** 2, 0.0))


# ---------------------------------------------------------------------------------------------------
# Wheel meshes
# ---------------------------------------------------------------------------------------------------

TYRE_MATERIAL, RIM_MATERIAL = 0, 1
# The tyre's cross-section from the outer bead round the tread to the inner bead, as (share of the radius
# from the axle, share of the width along it, +1/2 = outer face): sidewalls bulge, shoulders are rounded.
_TYRE_PROFILE = ((0.68, 0.40), (0.80, 0.48), (0.90, 0.50), (0.96, 0.47), (0.995, 0.40), (1.0, 0.30),
                 (1.0, -0.30), (0.995, -0.40), (0.96, -0.47), (0.90, -0.50), (0.80, -0.48), (0.68, -0.40))
# The rim, from the tyre's outer bead to the hub cap: a lip, then a dish whose spokes stand proud of the gaps
# between them (spoke rings: x moves in by _SPOKE_DEPTH of the width in the gaps).
_RIM_PROFILE = ((0.66, 0.41), (0.60, 0.36), (0.42, 0.36), (0.20, 0.38), (0.10, 0.40))
_SPOKE_RINGS = (2, 3)  # indices into _RIM_PROFILE
_SPOKE_DEPTH = 0.12
_INNER_CAP_X = -0.36  # the inner face's centre, share of the width (hidden in the car)


def wheel_mesh(radius: float, width: float, outward: float = 1.0, segments: int = 40, spokes: int = 5
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed wheel: tyre (tread, rounded shoulders, bulging sidewalls) and a rim dished in on the outer side.

    In the wheel's frame: origin at the hub, +X along the axle, Y and Z the other two axes of the car's frame
    (object space: Y up; the same numbers serve Blender's frame, where the car's Z is up, because the wheel is
    round about X). The rim faces ``outward`` (+1: +X, a left wheel; -1: -X, a right wheel, the +1 mesh
    mirrored).

    Args:
        radius, width: the tyre's, > 0.
        outward: +1 or -1.
        segments: vertices around each ring, >= 3; a multiple of ``spokes`` gives evenly shaped spokes.
        spokes: number of rim spokes (0: a plain dish).

    Returns:
        vertices [N, 3] float64; faces [M, 3] int64, counter-clockwise seen from outside (the surface is closed:
        every edge belongs to two faces, once in each direction); materials [M] int64, :data:`TYRE_MATERIAL`
        or :data:`RIM_MATERIAL`.
    """
    if not (radius > 0 and width > 0) or outward not in (1.0, -1.0) or segments < 3:
        raise ValueError("wheel_mesh needs radius > 0, width > 0, outward +1 or -1 and at least 3 segments.")
    angles = 2 * math.pi * np.arange(segments) / segments
    # Spoke rings lie deeper in the gaps: 0 on a spoke's axis, 1 halfway between two spokes.
    gap = 0.5 - 0.5 * np.cos(spokes * angles) if spokes else np.zeros(segments)
    rings, materials = [], []
    # Rings from the hub cap out along the rim, round the tyre, then the inner face.
    for index, (r_share, x_share) in enumerate(reversed(_RIM_PROFILE)):
        depth = _SPOKE_DEPTH * gap if len(_RIM_PROFILE) - 1 - index in _SPOKE_RINGS else 0.0
        rings.append((r_share * radius * np.ones(segments), (x_share - depth) * width * np.ones(segments)))
        materials.append(RIM_MATERIAL)
    for r_share, x_share in _TYRE_PROFILE:
        rings.append((r_share * radius * np.ones(segments), x_share * width * np.ones(segments)))
        materials.append(TYRE_MATERIAL)
    ring_verts = np.stack([np.stack((x, r * np.sin(angles), r * np.cos(angles)), axis=-1) for r, x in rings])
    num_rings = len(rings)
    outer_cap = np.array([[_RIM_PROFILE[-1][1] * width, 0.0, 0.0]])
    inner_cap = np.array([[_INNER_CAP_X * width, 0.0, 0.0]])
    vertices = np.concatenate((ring_verts.reshape(-1, 3), outer_cap, inner_cap))

    # Ring k, point j: k * segments + j. The angle runs from +Z towards +Y: clockwise seen from +X (Z points to
    # the viewer's left there), and ring k + 1 lies farther from the outer cap along the surface; so (a, b, c) of
    # a band, which turns clockwise seen from the axle's outer end, is reversed to face outwards.
    ring, point = np.meshgrid(np.arange(num_rings - 1), np.arange(segments), indexing="ij")
    a = ring * segments + point
    b = ring * segments + (point + 1) % segments
    c, d = b + segments, a + segments
    quads = np.stack((np.stack((a, b, c), -1), np.stack((a, c, d), -1)), axis=2).reshape(-1, 3)
    quad_materials = np.repeat(materials[1:], 2 * segments)  # a band takes its outer ring's material
    j = np.arange(segments)
    outer_index, inner_index = num_rings * segments, num_rings * segments + 1
    last = (num_rings - 1) * segments
    outer_fan = np.stack((np.full(segments, outer_index), (j + 1) % segments, j), -1)
    inner_fan = np.stack((np.full(segments, inner_index), last + j, last + (j + 1) % segments), -1)
    faces = np.concatenate((quads, outer_fan, inner_fan))
    face_materials = np.concatenate((quad_materials, np.full(segments, RIM_MATERIAL), np.full(segments, TYRE_MATERIAL)))
    if outward < 0:  # the mirror image in x = 0; mirroring turns the winding, so turn it back
        vertices = vertices * np.array([-1.0, 1.0, 1.0])
        faces = faces[:, ::-1]
    return vertices, np.ascontiguousarray(faces), face_materials.astype(np.int64)


# ---------------------------------------------------------------------------------------------------
# Pulling the body's wheel blobs in
# ---------------------------------------------------------------------------------------------------

# Pulled-in vertices stop this share of the wheel's width inside its inner face, so nothing z-fights with it.
_PULL_MARGIN_SHARE = 0.05
# Vertices of wheel faces within this many radii of an axle (in y-z) are pulled in; farther ones are stray
# labels on the body, left where they are.
_PULL_REACH = 1.1


def pull_in_wheels(verts, faces, part_labels, wheels: list[Wheel]) -> tuple[np.ndarray, np.ndarray]:
    """The body with its wheel blobs pushed in behind the new wheels, their faces relabelled body.

    Every vertex of a wheel-labelled face that lies within 1.1 radii of a wheel's axle (distance in y-z) on that
    wheel's side and outside a plane just inside the wheel's inner face moves along x towards the car's centre
    plane, into a thin slab behind that plane (|x| never grows; 0.05 of the wheel's width inside its inner face).
    Pulling in rather than deleting keeps the body one closed surface with its vertex count and topology
    (UVs, the template's face list, the renderer's shared faces): deleting the faces would leave holes in the
    body's side where the wheel arch is, visible round the new wheel's tyre.

    Args:
        verts: [V, 3] object space; faces: [F, 3]; part_labels: [F]; wheels: from :func:`fit_wheels`.

    Returns:
        verts [V, 3] float32 (only pulled vertices changed), part_labels [F] int64 with no :data:`WHEEL_LABEL`.
    """
    verts = _numpy(verts, np.float32).copy()
    faces = _numpy(faces, np.int64)
    part_labels = _numpy(part_labels, np.int64).copy()
    is_wheel = part_labels == WHEEL_LABEL
    candidates = np.unique(faces[is_wheel])
    for wheel in wheels:
        points = verts[candidates].astype(np.float64)
        on_side = points[:, 0] * wheel.outward > 0
        near_axle = np.hypot(points[:, 1] - wheel.centre[1], points[:, 2] - wheel.centre[2]) <= _PULL_REACH * wheel.radius
        limit = max(wheel.inner_x - _PULL_MARGIN_SHARE * wheel.width, 0.0)
        chosen = candidates[on_side & near_axle]
        side_x = np.abs(verts[chosen, 0].astype(np.float64))
        beyond = side_x > limit
        # Into a slab _PULL_MARGIN_SHARE of the width thick behind the limit, in their order along x: vertices
        # stay distinct (a file round trip, which welds equal positions, keeps them all), faces keep their side.
        side_x[beyond] = limit - _PULL_MARGIN_SHARE * wheel.width * np.exp(-(side_x[beyond] - limit) / wheel.width)
        verts[chosen, 0] = np.copysign(side_x, verts[chosen, 0])
    part_labels[is_wheel] = BODY_LABEL
    return verts, part_labels


def replace_wheels(verts, faces, part_labels) -> tuple[np.ndarray, np.ndarray, list[Wheel]]:
    """The body with its wheel blobs pulled in, and the wheels that replace them: :func:`fit_wheels` then
    :func:`pull_in_wheels`. Returns (verts [V, 3] float32, part_labels [F] int64, wheels); build each wheel's
    mesh with ``wheel_mesh(wheel.radius, wheel.width, wheel.outward)``."""
    wheels = fit_wheels(verts, faces, part_labels)
    verts, part_labels = pull_in_wheels(verts, faces, part_labels, wheels)
    return verts, part_labels, wheels



# ---------------------------------------------------------------------------------------------------
# The wheels' colours in the photo
# ---------------------------------------------------------------------------------------------------

# Where a wheel's outer side is read, as shares of its radius: the tyre's sidewall, and the rim's dish inside its
# lip (wheel_mesh's rim ends at 0.66 of the radius, the world's at 0.62).
TYRE_SAMPLE_RADII = (0.78, 0.86, 0.94)
RIM_SAMPLE_RADII = (0.2, 0.3, 0.4, 0.5)
_SAMPLE_ANGLES = 24
_OUTER_SIDE_SHARE = 0.45  # the outer side's plane, share of the width out from the hub (wheel_mesh's sidewall)
# A wheel says nothing when its outer side is seen nearly edge-on (cosine between its axle and the line of sight
# below this), when its radius spans fewer photo pixels than this, or when fewer than this share of its samples
# fall on the car's mask (the wheel was placed off the car).
MIN_FACING_COSINE = 0.3
MIN_RADIUS_PIXELS = 4.0
MIN_SEEN_SHARE = 0.6
# A rim's colour is the median of its brightest samples, this share of them (the metal, not the gaps between the
# spokes, nor the tyre that a misplaced wheel's rim rings catch: a reconstruction's wheels sit a fifth to a third
# of a radius off); a tyre's the median of its darkest half (not the paint of the arch above it). Chosen on world
# cars of seed 7 (0.5 / 0.35 / 0.25 / 0.15 and cosines 0.3 / 0.6 / 0.8 tried); benchmarks/bm_wheel_colours.py
# scores them on seed 999.
RIM_BRIGHT_SHARE = 0.25
TYRE_DARK_SHARE = 0.5


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear ones (IEC 61966-2-1), elementwise."""
    srgb = np.clip(srgb, 0.0, 1.0)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] -> sRGB-encoded ones, the inverse of :func:`srgb_to_linear`."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def photo_wheel_colours(wheels: list[Wheel], camera, image, mask) -> dict[str, tuple[float, float, float]]:
    """The tyre's and the rim's colour as the photo shows them, for materials that tint the new wheels.

    Each wheel whose outer side faces the photo's camera is read on rings of its outer side (tyre:
    :data:`TYRE_SAMPLE_RADII`; rim: :data:`RIM_SAMPLE_RADII`), at the pixel each ring point projects to. The
    samples of all seen wheels are pooled per band: a rim is metal spokes over dark gaps, so its colour is the
    per-channel median of its brightest :data:`RIM_BRIGHT_SHARE` (a quarter) of samples; a tyre's ring can catch
    the arch's paint above it, so its colour is the median of its darker half.

    Args:
        wheels: from :func:`fit_wheels`, in the mesh's object space.
        camera: ``geometry.camera.Camera`` of batch 1 that sees the mesh in ``image``.
        image: [3, H, W] float, sRGB-encoded in [0, 1] (the reconstruction's framed photo).
        mask: [1, H, W] or [H, W] float, > 0.5 on the car.

    Returns:
        ``{"tyre": (r, g, b), "rim": (r, g, b)}``, linear RGB in [0, 1]; empty when no wheel is seen well enough
        (see :data:`MIN_FACING_COSINE`, :data:`MIN_RADIUS_PIXELS`, :data:`MIN_SEEN_SHARE`), and then the default
        rubber and metal looks stand.
    """
    import torch

    image = _numpy(image, np.float64)
    mask = _numpy(mask, np.float64).reshape(image.shape[1:])
    assert image.ndim == 3 and image.shape[0] == 3, image.shape
    height, width = image.shape[1:]
    eye = camera.position()[0].double().numpy()
    angles = 2 * math.pi * np.arange(_SAMPLE_ANGLES) / _SAMPLE_ANGLES
    ring = np.stack((np.zeros_like(angles), np.sin(angles), np.cos(angles)), axis=-1)  # round the axle (+-x)
    radii = np.array(TYRE_SAMPLE_RADII + RIM_SAMPLE_RADII)
    is_rim = np.repeat(np.arange(len(radii)) >= len(TYRE_SAMPLE_RADII), _SAMPLE_ANGLES)
    seen = []
    for wheel in wheels:
        outer_hub = wheel.centre + np.array([wheel.outward * _OUTER_SIDE_SHARE * wheel.width, 0.0, 0.0])
        sight = eye - outer_hub
        if wheel.outward * sight[0] < MIN_FACING_COSINE * np.linalg.norm(sight):
            continue
        hub_and_top = outer_hub + np.array([[0.0, 0.0, 0.0], [0.0, wheel.radius, 0.0]])
        points = np.concatenate((hub_and_top, (outer_hub + wheel.radius * radii[:, None, None] * ring).reshape(-1, 3)))
        pixels = camera.project_to_pixels(torch.from_numpy(points)[None].to(camera.azimuth.dtype),
                                          (height, width))[0].double().numpy()
        if np.linalg.norm(pixels[1] - pixels[0]) < MIN_RADIUS_PIXELS:
            continue
        columns, rows = np.floor(pixels[2:]).astype(np.int64).T
        on_car = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
        on_car[on_car] = mask[rows[on_car], columns[on_car]] > 0.5
        if on_car.mean() < MIN_SEEN_SHARE:
            continue
        seen.append((image[:, rows[on_car], columns[on_car]].T, is_rim[on_car]))
    if not seen:
        return {}
    values, rim = (np.concatenate(parts) for parts in zip(*seen))
    colours = {}
    for band, in_band in (("tyre", ~rim), ("rim", rim)):
        if not in_band.any():  # cannot happen while each band holds under MIN_SEEN_SHARE of a wheel's samples
            continue
        band_values = values[in_band]
        luminance = band_values @ np.array([0.2126, 0.7152, 0.0722])
        if band == "rim":
            chosen = luminance >= np.quantile(luminance, 1 - RIM_BRIGHT_SHARE)
        else:
            chosen = luminance <= np.quantile(luminance, TYRE_DARK_SHARE)
        colours[band] = tuple(float(c) for c in srgb_to_linear(np.median(band_values[chosen], axis=0)))
    return colours
