"""Scenes for the procedural cars: cameras, sun and sky light, ray-cast backgrounds, batched renders.

Every item of a world dataset is drawn from its own generator, seeded by ``(seed, index)``
(:func:`item_rng`), so an item never depends on which other items were rendered with it.

Distributions (per item, independent):

* Camera: azimuth uniform in [0, 360) degrees, elevation uniform in [0, 30] degrees (the range of the
  paper's car data), distance ``CAMERA_DISTANCE`` times a uniform jitter in [0.95, 1.05], vertical field of
  view fixed at ``CAMERA_FOV_Y`` degrees; the camera looks at the origin (the car's bounding-box centre).
* Sun: azimuth uniform in [0, 360), elevation uniform in [25, 75] degrees; ambient 0.35-0.55 and
  diffuse 0.45-0.7 (a hemisphere term makes upward faces slightly brighter), plus a small specular
  highlight on paint and glass.
* Sky: a horizon-to-zenith gradient of one of four moods (clear, hazy, overcast, evening) with a cloud
  layer of random cover; a band of distant scenery (hills, mountains, a tree line or buildings) on the
  horizon.
* Ground: one of asphalt, concrete tiles, grass or dirt with multi-scale noise, hazing into the sky
  colour with distance; a soft dark contact shadow under the car, pushed a little away from the sun.

The background is ray-cast per pixel through the same camera as the car: the ground is the plane
``y = Car.ground_y`` on which the wheels stand, so the horizon and the ground perspective always agree
with the camera's elevation, and the shadow stays under the car from every view.

Rendering uses :func:`ganverse3d.render.render_mesh` (unlit texture colour and ``face_index``); the
lighting is applied here from the per-pixel face normals, because each item has its own sun while the
renderer's :class:`~ganverse3d.render.Lighting` holds one direction for the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import Camera, face_normals
from ..render import render_mesh
from .cars import Car, CarSpec, batch_cars, build_car, sample_car_spec

CAMERA_DISTANCE = 3.8
CAMERA_FOV_Y = 30.0

GROUND_KINDS = ("asphalt", "concrete", "grass", "dirt")
SKY_MOODS = ("clear", "hazy", "overcast", "evening")

# (horizon, zenith) sky colours per mood, sRGB.
_SKY_COLOURS = {
    "clear": ((0.78, 0.86, 0.95), (0.3, 0.5, 0.85)),
    "hazy": ((0.86, 0.88, 0.9), (0.55, 0.66, 0.82)),
    "overcast": ((0.78, 0.79, 0.8), (0.6, 0.62, 0.66)),
    "evening": ((0.98, 0.75, 0.5), (0.35, 0.42, 0.65)),
}
_GROUND_COLOURS = {
    "asphalt": (0.3, 0.3, 0.31), "concrete": (0.62, 0.61, 0.58), "grass": (0.3, 0.42, 0.17), "dirt": (0.55, 0.46, 0.34),
}
SCENERY_KINDS = ("hills", "mountains", "trees", "buildings")
# Colour, height range (degrees above the horizon) and paleness (aerial perspective) per scenery kind.
_SCENERY = {
    "hills": ((0.3, 0.38, 0.24), (0.5, 2.5), 0.35),
    "mountains": ((0.36, 0.42, 0.52), (2.0, 5.0), 0.5),
    "trees": ((0.14, 0.24, 0.12), (0.8, 2.5), 0.2),
    "buildings": ((0.45, 0.46, 0.5), (0.8, 3.0), 0.3),
}
# Specular strength per part label (body, window, wheel, headlight, taillight, plate).
_SPECULAR = (0.25, 0.45, 0.03, 0.3, 0.3, 0.05)
_NOISE_SIZE = 32
_SCENERY_SAMPLES = 2048


@dataclass(frozen=True)
class SceneSpec:
    """Camera, light and background of one item; JSON-able (:meth:`to_json`). Angles in degrees."""

    azimuth: float
    elevation: float
    distance: float
    fov_y: float
    sun_azimuth: float
    sun_elevation: float
    ambient: float
    diffuse: float
    sky: str
    cloud_cover: float
    ground: str
    ground_tint: tuple
    scenery: str
    scenery_height: float
    noise_seed: int

    def to_json(self) -> dict:
        return {name: (list(value) if isinstance(value, tuple) else value) for name, value in self.__dict__.items()}

    def sun_direction(self) -> tuple[float, float, float]:
        """Unit vector from the surface toward the sun, object space."""
        az, el = math.radians(self.sun_azimuth), math.radians(self.sun_elevation)
        return (math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az))


def item_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of item ``index`` of a dataset with ``seed``, independent of every other item."""
    return np.random.default_rng(np.random.SeedSequence((int(seed), int(index))))


def sample_scene_spec(rng: np.random.Generator) -> SceneSpec:
    """Draw a camera, light and background (distributions in the module docstring)."""
    return SceneSpec(
        azimuth=float(rng.uniform(0.0, 360.0)), elevation=float(rng.uniform(0.0, 30.0)),
        distance=float(CAMERA_DISTANCE * rng.uniform(0.95, 1.05)), fov_y=CAMERA_FOV_Y,
        sun_azimuth=float(rng.uniform(0.0, 360.0)), sun_elevation=float(rng.uniform(25.0, 75.0)),
        ambient=float(rng.uniform(0.35, 0.55)), diffuse=float(rng.uniform(0.45, 0.7)),
        sky=SKY_MOODS[int(rng.choice(len(SKY_MOODS), p=(0.45, 0.2, 0.2, 0.15)))],
        cloud_cover=float(rng.uniform(0.0, 0.8)),
        ground=GROUND_KINDS[int(rng.choice(len(GROUND_KINDS), p=(0.4, 0.2, 0.25, 0.15)))],
        ground_tint=tuple(float(c) for c in rng.uniform(0.85, 1.15) * rng.uniform(0.96, 1.04, 3)),
        **_sample_scenery(rng),
        noise_seed=int(rng.integers(2**31)))


def _sample_scenery(rng: np.random.Generator) -> dict:
    kind = SCENERY_KINDS[int(rng.integers(len(SCENERY_KINDS)))]
    return {"scenery": kind, "scenery_height": float(rng.uniform(*_SCENERY[kind][1]))}


def sample_item(seed: int, index: int) -> tuple[CarSpec, SceneSpec]:
    """The car and scene of item ``index`` of a dataset with ``seed``."""
    rng = item_rng(seed, index)
    return sample_car_spec(rng), sample_scene_spec(rng)


@dataclass
class WorldRender:
    """A batch of rendered world items.

    Attributes:
        images: [B, 3, H, W] float32 in [0, 1], car over its background.
        masks: [B, 1, H, W] float32, 1 where the car is (hard).
        part_maps: [B, H, W] int64 part label (index into PART_LABELS) per pixel, -1 for background.
        cameras: the :class:`Camera` batch used.
    """

    images: torch.Tensor
    masks: torch.Tensor
    part_maps: torch.Tensor
    cameras: Camera


def cameras_of(scenes: list[SceneSpec]) -> Camera:
    """The scenes' cameras as one float32 :class:`Camera` batch."""
    return Camera.create([s.azimuth for s in scenes], [s.elevation for s in scenes],
                         [s.distance for s in scenes], [s.fov_y for s in scenes], dtype=torch.float32)


@torch.no_grad()
def render_items(seed: int, indices, resolution: int) -> tuple[list[Car], list[SceneSpec], WorldRender]:
    """Sample, build and render items ``indices`` of a dataset with ``seed`` at ``resolution``²."""
    items = [sample_item(seed, index) for index in indices]
    cars = [build_car(car_spec) for car_spec, _ in items]
    scenes = [scene for _, scene in items]
    return cars, scenes, render_world(cars, scenes, resolution)


@torch.no_grad()
def render_world(cars: list[Car], scenes: list[SceneSpec], resolution: int) -> WorldRender:
    """Render each car in its scene at ``resolution`` x ``resolution`` (CPU, float32, no gradients)."""
    verts, faces, face_uvs, textures, part_labels = batch_cars(cars)
    cameras = cameras_of(scenes)
    size = (resolution, resolution)
    out = render_mesh(verts, faces, face_uvs, textures, cameras, size, soft=False)
    covered = out.face_index >= 0
    pixels = covered.nonzero(as_tuple=True)                     # (item, row, column) of car pixels
    item, face = pixels[0], out.face_index[pixels]

    # Lambert from each item's sun, a hemisphere ambient (tops a little brighter) and a Blinn-Phong
    # highlight on paint and glass, from the flat face normals of the car pixels.
    normal = face_normals(verts, faces)[item, face]                                   # [N, 3]
    sun = torch.tensor([s.sun_direction() for s in scenes], dtype=torch.float32)
    half_vector = F.normalize(sun + F.normalize(cameras.position(), dim=-1), dim=-1)
    ambient = torch.tensor([s.ambient for s in scenes])[item]
    diffuse = torch.tensor([s.diffuse for s in scenes])[item]
    label = part_labels[item, face]
    lambert = (normal * sun[item]).sum(-1).clamp_min(0)
    shade = ambient * (0.85 + 0.15 * normal[:, 1]) + diffuse * lambert
    highlight = torch.tensor(_SPECULAR)[label] * (normal * half_vector[item]).sum(-1).clamp_min(0) ** 40
    albedo = out.image.permute(0, 2, 3, 1)[pixels]

    image = render_backgrounds(cars, scenes, cameras, size).permute(0, 2, 3, 1).contiguous()
    image[pixels] = (albedo * shade[:, None] + highlight[:, None]).clamp(0, 1)
    image = _smooth_silhouettes(image, covered).permute(0, 3, 1, 2).contiguous()
    part_maps = torch.full(covered.shape, -1, dtype=torch.int64)
    part_maps[pixels] = label
    return WorldRender(images=image, masks=out.mask, part_maps=part_maps, cameras=cameras)


def _smooth_silhouettes(image: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    """Soften the staircase along the car's outline (a cheap stand-in for anti-aliasing; masks stay hard):
    pixels whose 4-neighbourhood crosses the silhouette get the mean of themselves and their 3x3 block.

    image: [B, H, W, 3]; covered: [B, H, W] bool. Returns a new [B, H, W, 3] image.
    """
    padded = F.pad(covered[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0].bool()
    centre = padded[:, 1:-1, 1:-1]
    edge = ((padded[:, :-2, 1:-1] != centre) | (padded[:, 2:, 1:-1] != centre)
            | (padded[:, 1:-1, :-2] != centre) | (padded[:, 1:-1, 2:] != centre))
    item, row, column = edge.nonzero(as_tuple=True)
    height, width = covered.shape[1:]
    block = torch.zeros(len(item), 3)
    for d_row in (-1, 0, 1):
        for d_column in (-1, 0, 1):
            block += image[item, (row + d_row).clamp(0, height - 1), (column + d_column).clamp(0, width - 1)]
    smoothed = image.clone()
    smoothed[item, row, column] = 0.5 * image[item, row, column] + block / 18
    return smoothed


# ---------------------------------------------------------------------------------------------------
# Backgrounds
# ---------------------------------------------------------------------------------------------------


def _view_rays(cameras: Camera, size: tuple[int, int]) -> torch.Tensor:
    """Unit object-space directions [B, H, W, 3] of the rays through the pixel centres."""
    height, width = size
    fx, fy = cameras.focal_ndc(width / height)
    x = (2 * torch.arange(width, dtype=torch.float32) + 1 - width) / width
    y = (height - 2 * torch.arange(height, dtype=torch.float32) - 1) / height
    camera_dirs = torch.stack(torch.broadcast_tensors(
        x[None, None, :] / fx[:, None, None], y[None, :, None] / fy[:, None, None],
        -torch.ones(1, 1, 1)), -1)                                                      # [B, H, W, 3]
    # Rows of the world-to-camera rotation are the camera axes in object space.
    return F.normalize(camera_dirs @ cameras.rotation()[:, None], dim=-1)


def _noise_lattices(scenes: list[SceneSpec]) -> torch.Tensor:
    """Each item's random lattice of values in [-1, 1], flattened: [B, N * N] with N = _NOISE_SIZE."""
    return torch.from_numpy(np.stack([
        np.random.default_rng(scene.noise_seed).uniform(-1.0, 1.0, _NOISE_SIZE * _NOISE_SIZE) for scene in scenes
    ]).astype(np.float32))


def _sample_noise(lattice: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Value noise [B, H, W] in [-1, 1] at coords [B, H, W, 2] (one lattice cell = 1 / N units, the pattern
    repeats every unit), interpolated with smoothstep so that no lattice grid shows."""
    cells = coords * _NOISE_SIZE
    corner = cells.floor()
    fraction = cells - corner
    weight = fraction * fraction * (3 - 2 * fraction)
    column, row = corner[..., 0].long(), corner[..., 1].long()
    flat = lattice.reshape(lattice.shape[0], -1)
    batch = flat.shape[0]
    offset = (torch.arange(batch) * _NOISE_SIZE * _NOISE_SIZE).reshape(batch, *([1] * (coords.dim() - 2)))
    values = flat.reshape(-1)

    def at(d_column, d_row):
        index = ((row + d_row) % _NOISE_SIZE) * _NOISE_SIZE + (column + d_column) % _NOISE_SIZE
        return values[index + offset]

    top = at(0, 0) + (at(1, 0) - at(0, 0)) * weight[..., 0]
    bottom = at(0, 1) + (at(1, 1) - at(0, 1)) * weight[..., 0]
    return top + (bottom - top) * weight[..., 1]


def _fbm(lattice: torch.Tensor, coords: torch.Tensor, octaves: int) -> torch.Tensor:
    """Sum of noise octaves (each twice the frequency, half the amplitude), [B, H, W]."""
    total = torch.zeros(coords.shape[:-1])
    for octave in range(octaves):
        # Offset octaves so that their lattices do not line up.
        total = total + 0.5**octave * _sample_noise(lattice, coords * 2**octave + 0.37 * octave)
    return total


def _scenery_tables(noises: torch.Tensor, scenes: list[SceneSpec]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per item, around the horizon (_SCENERY_SAMPLES steps of azimuth): the scenery's height in degrees
    and its brightness, each [B, _SCENERY_SAMPLES]."""
    around = torch.arange(_SCENERY_SAMPLES, dtype=torch.float32) / _SCENERY_SAMPLES
    along = torch.stack((around, torch.full_like(around, 0.5)), -1).expand(len(scenes), -1, -1)
    smooth = 0.5 + 0.5 * _fbm(noises, along * 2, 3)                                            # hills, mountains
    bumpy = 0.75 + 0.2 * _fbm(noises, along * 4, 2) + 0.15 * _sample_noise(noises, along * 30)  # tree tops
    blocks = torch.stack(((around * 90).floor() / 90, along[0, :, 1]), -1).expand_as(along)
    blocky = 0.35 + 0.65 * (0.5 + 0.5 * _sample_noise(noises, blocks * 3.3))                # building heights
    profiles = {"hills": smooth, "mountains": smooth, "trees": bumpy, "buildings": blocky}
    ridge = torch.stack([profiles[s.scenery][index] * s.scenery_height for index, s in enumerate(scenes)])
    shade = 0.85 + 0.15 * _sample_noise(noises, along * 16 + 0.3)
    return ridge, shade


def render_backgrounds(cars: list[Car], scenes: list[SceneSpec], cameras: Camera, size: tuple[int, int]) -> torch.Tensor:
    """Sky, distant scenery and ground with the car's contact shadow, [B, 3, H, W] in [0, 1].

    Ray-cast at half resolution and upsampled bilinearly: four times cheaper, and the slight softness
    reads as the background being a little out of focus behind the sharp car.
    """
    height, width = size
    half_size = (max(1, (height + 1) // 2), max(1, (width + 1) // 2))
    background = _ray_cast_background(cars, scenes, cameras, half_size)
    return F.interpolate(background, size=size, mode="bilinear", align_corners=False).clamp(0, 1)


def _ray_cast_background(cars: list[Car], scenes: list[SceneSpec], cameras: Camera, size: tuple[int, int]) -> torch.Tensor:
    """The background at pixel resolution ``size``, [B, 3, H, W]."""
    rays = _view_rays(cameras, size)
    origin = cameras.position()[:, None, None]                                         # [B, 1, 1, 3]
    batch = len(scenes)
    noises = _noise_lattices(scenes)

    def per_item(values):  # one value or colour per item -> [B, 1, 1] or [B, 1, 1, 3], to broadcast over pixels
        tensor = torch.tensor(values, dtype=torch.float32)
        return tensor.reshape(batch, 1, 1, *tensor.shape[1:])

    # Sky: gradient by ray elevation, a cloud layer where rays meet a plane high above.
    up = rays[..., 1]
    horizon_rgb = per_item([_SKY_COLOURS[s.sky][0] for s in scenes])
    zenith_rgb = per_item([_SKY_COLOURS[s.sky][1] for s in scenes])
    height_t = up.clamp(0, 1).sqrt()[..., None]
    sky = horizon_rgb + (zenith_rgb - horizon_rgb) * height_t
    # The +0.15 keeps clouds from shrinking to noise at the horizon, where they would alias.
    cloud_plane = rays[..., [0, 2]] / (up.clamp_min(0)[..., None] + 0.15) * 0.03
    clouds = _fbm(noises, cloud_plane + 0.5, 3)
    cover = per_item([s.cloud_cover for s in scenes])
    fade = (up / 0.2).clamp(0, 1)
    cloud_alpha = ((clouds - (1.0 - 2.0 * cover)) * 0.9).clamp(0, 0.85) * fade * fade * (3 - 2 * fade)
    cloud_rgb = horizon_rgb * 0.15 + 0.85 * torch.tensor([0.97, 0.97, 0.98])
    sky = sky + (cloud_rgb - sky) * cloud_alpha[..., None]

    # Distant scenery: a band above the horizon whose height varies with the ray's azimuth only, so it is
    # tabulated once per item around the horizon and looked up per pixel.
    around = torch.atan2(rays[..., 0], rays[..., 2]) / (2 * math.pi) + 0.5               # [0, 1] around
    ridge_table, shade_table = _scenery_tables(noises, scenes)
    position = around * _SCENERY_SAMPLES
    left = position.floor().long()
    step = position - left
    flat_index = torch.arange(batch).reshape(batch, 1, 1) * _SCENERY_SAMPLES

    def lookup(table):
        values = table.reshape(-1)
        return torch.lerp(values[flat_index + left % _SCENERY_SAMPLES],
                          values[flat_index + (left + 1) % _SCENERY_SAMPLES], step)

    elevation_deg = torch.rad2deg(torch.asin(up.clamp(-1, 1)))
    kinds = [s.scenery for s in scenes]
    scenery = per_item([_SCENERY[k][0] for k in kinds]) * lookup(shade_table)[..., None]
    scenery = scenery + (horizon_rgb - scenery) * per_item([_SCENERY[k][2] for k in kinds])[..., None]
    sky = torch.where(((elevation_deg >= 0) & (elevation_deg < lookup(ridge_table)))[..., None], scenery, sky)

    # Ground: the plane y = ground_y; multi-scale noise in ground coordinates, haze with distance.
    ground_y = per_item([car.ground_y for car in cars])
    travel = (ground_y - origin[..., 1]) / torch.minimum(up, torch.tensor(-1e-4))     # > 0 below the horizon
    hit = origin + travel[..., None] * rays
    ground_xz = hit[..., [0, 2]]
    grounds = [s.ground for s in scenes]
    ground_rgb = per_item([_GROUND_COLOURS[k] for k in grounds]) * per_item([s.ground_tint for s in scenes])
    coarse = _fbm(noises, ground_xz * 0.05 + 0.21, 2)
    fine = _sample_noise(noises, ground_xz * 0.9)
    roughness = per_item([{"asphalt": 0.1, "concrete": 0.05, "grass": 0.18, "dirt": 0.14}[k] for k in grounds])
    ground = ground_rgb * (1 + 0.18 * coarse + roughness * fine)[..., None]
    tiles = per_item([float(k == "concrete") for k in grounds])
    tile_xz = ground_xz * 1.2
    seam = ((tile_xz - tile_xz.floor() - 0.5).abs() > 0.47).any(-1).float()
    ground = ground * (1 - 0.25 * tiles * seam)[..., None]
    ground = ground * (1 - _contact_shadow(cars, scenes, ground_xz))[..., None]
    haze = 1 - torch.exp(-travel.clamp_min(0) / 40.0)
    ground = ground + (horizon_rgb - ground) * haze[..., None]

    background = torch.where((up < 0)[..., None], ground, sky)
    return background.clamp(0, 1).permute(0, 3, 1, 2)


def _contact_shadow(cars: list[Car], scenes: list[SceneSpec], ground_xz: torch.Tensor) -> torch.Tensor:
    """Darkening in [0, 1) of the ground at ground_xz [B, H, W, 2]: a soft rounded rectangle the size of
    the car's footprint, with a darker core right under it, shifted a little away from the sun."""
    low = torch.stack([car.verts.amin(0) for car in cars])[:, [0, 2]]
    high = torch.stack([car.verts.amax(0) for car in cars])[:, [0, 2]]
    sun = torch.tensor([scene.sun_direction() for scene in scenes], dtype=torch.float32)
    # The shadow slides away from the sun, further when the sun is low.
    shift = -sun[:, [0, 2]] / sun[:, 1:].clamp_min(0.3) * 0.12
    centre = (0.5 * (high + low) + shift)[:, None, None]
    corner = 0.15
    offset = (ground_xz - centre).abs() - 0.5 * (high - low)[:, None, None] + corner
    distance = torch.linalg.vector_norm(offset.clamp_min(0), dim=-1) + offset.amax(-1).clamp_max(0) - corner
    return 0.4 * torch.sigmoid(-distance / 0.06) + 0.35 * torch.sigmoid(-(distance + 0.1) / 0.025)
