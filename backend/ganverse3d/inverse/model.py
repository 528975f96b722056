"""The inverse-graphics network f: one image (and its object mask) -> mesh, UV texture and camera.

Paper Sec. 3.2: {S, T} = f(I). S deforms the DIB-R template sphere (642 vertices); T is a UV texture map
for the template's per-face UVs (u = 0.5 at the front, +Z; v = 0 at the top, +Y; see
:mod:`ganverse3d.geometry.mesh`). Beyond the paper, f also estimates the camera that sees the object as in
the image, because a user placing the mesh in Blender needs it.

Shape parameterisation (object space, +Y up, front +Z):

    verts = (template + offsets) * scale + translation

* ``template``: the unit sphere, or with ``template="car"`` the sphere's vertices moved along their
  directions onto the mean world car (:data:`CAR_TEMPLATE_PATH`), so that a shape starts as a car, not a ball.
* ``offsets`` [B, 642, 3]: per-vertex displacement of the template, before scaling; the shape losses
  (Laplacian, move) act on them. With ``symmetric_shape`` they are mirror-symmetric in x (cars are),
  which halves what the network has to get right; the paper does not say, CMR and DIB-R's birds do it.
* ``scale`` [B, 3]: per-axis scale, ``initial_scale * exp(max_log_scale * tanh(raw))``; cars are long in z.
* ``translation`` [B, 3]: ``max_translation * tanh(raw)`` (x is 0 for symmetric shapes).

The encoder follows DIB-R's (strided convolutions on a 4-channel image + mask input, then fully connected
layers) with one stride-2 stage per halving down to 4 x 4, so any power-of-two input size works.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..export import TexturedMesh
from ..geometry import AZIMUTH_BIN_DEG, Camera, template_sphere

# Elevations the camera head can express, degrees either side of the horizon (the car data spans 0-30).
_MAX_ABS_ELEVATION_DEG = 60.0
# The predicted distance lies within reference_distance * exp(+-this).
_MAX_LOG_DISTANCE = 0.7
# The finest template a network may ask for: 2562 vertices. Building one costs memory quadratic in its vertex
# count (the mirror search), and a bundle's init_kwargs must not be able to ask for gigabytes (12 ran to 8.3 GB).
MAX_SUBDIVISIONS = 4
# The azimuth bins the framing is measured in (ganverse3d.geometry.azimuth_bins).
AZIMUTH_BINS = round(360 / AZIMUTH_BIN_DEG)
# The car-shaped template (template="car"): the sphere's 642 vertices moved along their directions onto the
# mean world car (scripts/make_car_template.py), so faces, UVs and mirror pairs are the sphere's.
CAR_TEMPLATE_PATH = Path(__file__).resolve().parent / "car_template.json"
TEMPLATES = ("sphere", "car")


def template_verts(template: str, subdivisions: int) -> torch.Tensor:
    """[V, 3] float32 vertices of the named template (farthest vertex at 1): the icosphere, or the car."""
    sphere = template_sphere(subdivisions).verts
    if template == "sphere":
        return sphere
    if template != "car" or subdivisions != 3:
        raise ValueError(f"template must be one of {', '.join(TEMPLATES)} (car at 3 subdivisions only), not "
                         f"{template!r} at {subdivisions}.")
    verts = torch.tensor(json.loads(CAR_TEMPLATE_PATH.read_text())["verts"], dtype=torch.float32)
    if verts.shape != sphere.shape:
        raise ValueError(f"{CAR_TEMPLATE_PATH.name} holds {tuple(verts.shape)} vertices, not {tuple(sphere.shape)}.")
    return verts


@dataclass
class Prediction:
    """What :class:`InverseGraphicsNet` predicts for a batch of B images.

    Attributes:
        verts: [B, 642, 3] float32 object-space vertex positions (+Y up, front +Z).
        texture: [B, 3, Ht, Wt] float32 UV texture in [0, 1] for the template's ``face_uvs``.
        camera: :class:`Camera` batch of B: the estimated view (degrees, object units) with the model's fov.
        offsets: [B, 642, 3] the per-vertex offsets of the unit template (before scale and translation).
        scale: [B, 3] per-axis scale. translation: [B, 3].
        camera_vector: [B, 4] the raw camera estimate as trained: (sin az, cos az, elevation / 90 deg,
            log(distance / reference_distance)).
    """

    verts: torch.Tensor
    texture: torch.Tensor
    camera: Camera
    offsets: torch.Tensor
    scale: torch.Tensor
    translation: torch.Tensor
    camera_vector: torch.Tensor

    def mesh(self, index: int, faces: torch.Tensor, face_uvs: torch.Tensor) -> TexturedMesh:
        """Item ``index`` as a :class:`TexturedMesh` (CPU) with the model's template ``faces`` and ``face_uvs``."""
        return TexturedMesh(self.verts[index].detach(), faces, face_uvs, self.texture[index].detach())


def mirror_permutation(verts: torch.Tensor) -> torch.Tensor:
    """For vertices [V, 3] symmetric under x -> -x, the index [V] of each vertex's mirror image."""
    mirrored = verts * verts.new_tensor([-1.0, 1.0, 1.0])
    distance, index = torch.cdist(mirrored.double(), verts.double()).min(dim=1)
    if float(distance.max()) > 1e-5:
        raise ValueError("The template is not mirror-symmetric in x.")
    return index


def _conv_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2))


class UVPad(nn.Module):
    """Pads a UV-space feature map by one texel: wrapping around in u (the texture repeats across the seam at
    the back of the car, so the decoder sees no border there) and repeating the edge in v (the poles)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(F.pad(x, (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1), mode="replicate")


def uv_upsample_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """One step of a decoder in the template's UV space: 2x nearest upsampling, a 3x3 conv that wraps around in
    u, LeakyReLU (the texture decoder's, and the part branch's)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), UVPad(),
                         nn.Conv2d(in_channels, out_channels, 3), nn.LeakyReLU(0.2))


class InverseGraphicsNet(nn.Module):
    """f(image, mask) -> :class:`Prediction` (mesh on the template sphere, UV texture, camera)."""

    def __init__(self,
                 resolution: int = 64,            # Input image size (square, power of two, >= 16).
                 mask_input: bool = True,         # Feed the object mask as a 4th channel, as DIB-R's encoder does.
                 base_channels: int = 32,         # Channels of the first encoder stage; doubled per stage.
                 max_channels: int = 256,         # Most channels of any encoder stage.
                 feature_dim: int = 256,          # Size of the shared image code the heads read.
                 texture_height: int = 32,        # UV texture is texture_height x (2 * texture_height), power of two.
                 texture_channels: int = 128,     # Channels at the 4 x 8 start of the texture decoder; halved per step.
                 subdivisions: int = 3,           # Template icosphere subdivisions (3 -> 642 vertices, DIB-R's).
                 template: str = "sphere",        # "sphere" (DIB-R's) or "car": the sphere moved onto the mean car.
                 symmetric_shape: bool = True,    # Mirror-symmetric offsets in x (see module docstring).
                 initial_scale: float = 0.6,      # Per-axis scale of the unit sphere before training.
                 max_log_scale: float = 1.0,      # Scale stays within initial_scale * exp(+-max_log_scale).
                 max_translation: float = 0.2,    # Largest translation per axis, object units.
                 reference_distance: float = 3.8, # Typical camera distance of the training data (object units).
                 fov_y: float = 30.0,             # Vertical field of view (degrees) of the training data's cameras.
                 ):
        super().__init__()
        if resolution < 16 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 16, not {resolution}.")
        if texture_height < 4 or texture_height & (texture_height - 1):
            raise ValueError(f"texture_height must be a power of two >= 4, not {texture_height}.")
        if not 0 <= subdivisions <= MAX_SUBDIVISIONS:
            raise ValueError(f"subdivisions must be from 0 to {MAX_SUBDIVISIONS}, not {subdivisions}.")
        self.init_kwargs = dict(
            resolution=resolution, mask_input=mask_input, base_channels=base_channels, max_channels=max_channels,
            feature_dim=feature_dim, texture_height=texture_height, texture_channels=texture_channels,
            subdivisions=subdivisions, template=template, symmetric_shape=symmetric_shape, initial_scale=initial_scale,
            max_log_scale=max_log_scale, max_translation=max_translation, reference_distance=reference_distance,
            fov_y=fov_y)
        self.resolution = resolution
        self.mask_input = mask_input
        self.texture_height = texture_height
        self.symmetric_shape = symmetric_shape
        self.initial_scale = initial_scale
        self.max_log_scale = max_log_scale
        self.max_translation = max_translation
        self.reference_distance = reference_distance
        self.fov_y = fov_y

        template_mesh = template_sphere(subdivisions)
        # Topology travels with the module (.to(device)) but is rebuilt from init_kwargs, not saved.
        self.register_buffer("template_verts", template_verts(template, subdivisions).clone(), persistent=False)
        self.register_buffer("faces", template_mesh.faces.clone(), persistent=False)
        self.register_buffer("face_uvs", template_mesh.face_uvs.clone(), persistent=False)
        self.register_buffer("mirror", mirror_permutation(template_mesh.verts), persistent=False)
        num_verts = template_mesh.num_verts

        stages, channels = [], 3 + int(mask_input)
        for stage in range(int(math.log2(resolution // 4))):
            out_channels = min(base_channels * 2**stage, max_channels)
            stages.append(_conv_stage(channels, out_channels))
            channels = out_channels
        self.encoder = nn.Sequential(*stages)
        self.to_feature = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, feature_dim), nn.LeakyReLU(0.2),
                                        nn.Linear(feature_dim, feature_dim), nn.LeakyReLU(0.2))

        self.shape_head = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.LeakyReLU(0.2),
                                        nn.Linear(feature_dim, num_verts * 3 + 6))
        self.camera_head = nn.Sequential(nn.Linear(feature_dim, feature_dim // 2), nn.LeakyReLU(0.2),
                                         nn.Linear(feature_dim // 2, 4))

        self.texture_start = nn.Sequential(nn.Linear(feature_dim, texture_channels * 4 * 8), nn.LeakyReLU(0.2))
        self.texture_channels = texture_channels
        ups, channels = [], texture_channels
        for _ in range(int(math.log2(texture_height // 4))):
            ups.append(uv_upsample_stage(channels, max(channels // 2, 16)))
            channels = max(channels // 2, 16)
        self.texture_decoder = nn.Sequential(*ups, nn.Conv2d(channels, 3, 1))

        # Start from the scaled sphere: the last shape layer begins near zero so offsets, log-scale and
        # translation start near 0, and the network grows deformations from there.
        with torch.no_grad():
            self.shape_head[-1].weight.mul_(0.01)
            self.shape_head[-1].bias.zero_()

    @staticmethod
    def check_bundle_config(config: dict) -> None:
        """ValueError unless a bundle's training ``config`` holds a usable ``framing`` where it has one.

        The framing (written by ``ganverse3d.inverse.train.measure_framing``) is how the training images frame
        the car, and photos are cropped by it: ``fill`` (the box's longer side, in image sides) in (0, 1],
        ``centre`` an (x, y) offset within half an image side, and per azimuth bin ``bin_fill`` and
        ``bin_centre`` (one entry per bin, null for bins without images). ``ganverse3d.bundle.load_module``
        calls this before it builds the network.
        """
        framing = config.get("framing")
        if framing is None:
            return
        if not isinstance(framing, dict):
            raise ValueError("framing is not a JSON object")

        def check_fill(value, name: str) -> None:
            if not (_is_number(value) and 0 < value <= 1):
                raise ValueError(f"{name} is {value!r}, not a fraction in (0, 1]")

        def check_centre(value, name: str) -> None:
            if not (isinstance(value, list) and len(value) == 2
                    and all(_is_number(v) and abs(v) <= 0.5 for v in value)):
                raise ValueError(f"{name} is {value!r}, not an (x, y) offset within half an image side")

        check_fill(framing.get("fill"), "framing fill")
        check_centre(framing.get("centre"), "framing centre")
        for key, check in (("bin_fill", check_fill), ("bin_centre", check_centre)):
            entries = framing.get(key)
            if not (isinstance(entries, list) and len(entries) == AZIMUTH_BINS):
                raise ValueError(f"framing {key} is not a list of {AZIMUTH_BINS} entries, one per azimuth bin")
            for index, entry in enumerate(entries):
                if entry is not None:
                    check(entry, f"framing {key}[{index}]")

    @property
    def num_verts(self) -> int:
        return self.template_verts.shape[0]

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> Prediction:
        """Predict from images [B, 3, R, R] in [0, 1] and object masks [B, 1, R, R] in [0, 1] (R = resolution;
        the mask is required when the model was built with ``mask_input``)."""
        batch = image.shape[0]
        feature = self.image_code(image, mask)
        # The heads' outputs in float32 (under a training step's bfloat16 autocast too): the geometry and the
        # renderer need float32.
        shape = self.shape_head(feature).float()
        offsets = shape[:, :-6].reshape(batch, self.num_verts, 3)
        if self.symmetric_shape:
            mirrored = offsets[:, self.mirror] * offsets.new_tensor([-1.0, 1.0, 1.0])
            offsets = (offsets + mirrored) / 2
        scale = self.initial_scale * torch.exp(self.max_log_scale * torch.tanh(shape[:, -6:-3]))
        translation = self.max_translation * torch.tanh(shape[:, -3:])
        if self.symmetric_shape:
            translation = translation * translation.new_tensor([0.0, 1.0, 1.0])
        verts = (self.template_verts + offsets) * scale[:, None] + translation[:, None]

        start = self.texture_start(feature).reshape(batch, self.texture_channels, 4, 8)
        texture = torch.sigmoid(self.texture_decoder(start).float())

        camera, camera_vector = self._camera(feature)
        assert verts.shape == (batch, self.num_verts, 3), verts.shape
        assert texture.shape == (batch, 3, self.texture_height, 2 * self.texture_height), texture.shape
        return Prediction(verts=verts, texture=texture, camera=camera, offsets=offsets, scale=scale,
                          translation=translation, camera_vector=camera_vector)

    def estimate_camera(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[Camera, torch.Tensor]:
        """Only the camera estimate of :meth:`forward` (the same values, without decoding shape and texture):
        (:class:`Camera` batch of B, camera vector [B, 4])."""
        return self._camera(self.image_code(image, mask))

    def image_code(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The image code [B, feature_dim] that every head reads (the part branch too), from the inputs of
        :meth:`forward`."""
        batch = image.shape[0]
        assert image.shape[1:] == (3, self.resolution, self.resolution), image.shape
        if self.mask_input:
            assert mask is not None and mask.shape == (batch, 1, self.resolution, self.resolution), \
                None if mask is None else mask.shape
            image = torch.cat((image, mask), dim=1)
        return self.to_feature(self.encoder(image * 2 - 1))

    def _camera(self, feature: torch.Tensor) -> tuple[Camera, torch.Tensor]:
        raw_camera = self.camera_head(feature).float()
        direction = F.normalize(raw_camera[:, :2], dim=1, eps=1e-6)
        elevation_unit = (_MAX_ABS_ELEVATION_DEG / 90) * torch.tanh(raw_camera[:, 2])
        log_distance = _MAX_LOG_DISTANCE * torch.tanh(raw_camera[:, 3])
        camera_vector = torch.cat((direction, elevation_unit[:, None], log_distance[:, None]), dim=1)
        return camera_from_vector(camera_vector, self.reference_distance, self.fov_y), camera_vector


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def camera_to_vector(camera: Camera, reference_distance: float) -> torch.Tensor:
    """Cameras -> [B, 4] (sin az, cos az, elevation / 90 deg, log(distance / reference_distance)): the space
    in which the camera head is trained (no wrap-around in azimuth, comparable magnitudes)."""
    azimuth = torch.deg2rad(camera.azimuth)
    return torch.stack((torch.sin(azimuth), torch.cos(azimuth), camera.elevation / 90,
                        torch.log(camera.distance / reference_distance)), dim=1)


def camera_from_vector(vector: torch.Tensor, reference_distance: float, fov_y: float) -> Camera:
    """Inverse of :func:`camera_to_vector` (the sin/cos pair need not be unit length); azimuth in [0, 360)."""
    azimuth = torch.rad2deg(torch.atan2(vector[:, 0], vector[:, 1])) % 360
    return Camera(azimuth, vector[:, 2] * 90, reference_distance * torch.exp(vector[:, 3]),
                  torch.full_like(azimuth, fov_y))

