"""StyleGAN-R: a StyleGAN2 generator driven by camera, shape, texture and background (paper Sec. 3.3, Fig. 3).

The mapping network turns the four properties into the generator's W* code:

* ``g_v`` (an MLP) maps the camera to the ``view_dims`` dimensions of W*_V (the first ``view_layers`` entries,
  flattened) that correlate most with the annotated viewpoints (``ganverse3d.neural.view_dims``); the other
  dimensions of W*_V come from a learned constant;
* ``g_s`` (an MLP) maps the shape, ``g_t`` (a CNN) the UV texture and ``g_b`` (a CNN) the background to three
  codes of the content part W*_STB (the remaining entries, flattened), mixed per dimension by
  w_mtb = s_m * z_shape + s_t * z_txt + s_b * z_bck with (s_m, s_t, s_b) a softmax over the three, shared by
  all samples (its entropy is what training penalises, so that each dimension ends up explained by one property).

Inputs, in the inverse-graphics network's conventions (``ganverse3d.inverse.model``):

* camera vector [B, 4] float32: (sin az, cos az, elevation / 90 deg, log(distance / reference_distance));
* verts [B, V, 3] float32 object-space vertex positions of the template topology (+Y up, front +Z, about unit size);
* texture [B, 3, Ht, 2 Ht] float32 in [0, 1] on the template's UVs;
* background [B, 3, R, R] float32 in [0, 1], the image with the car's pixels set to 0, and mask [B, 1, R, R] in
  [0, 1] (the car), R = the generator's resolution.

Images come out [B, 3, R, R] float32 in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..geometry import Camera
from ..inverse.model import camera_to_vector
from ..stylegan2.networks import Generator

# What the mapping network mixes, in the order of its mixing weights s.
PROPERTIES = ("shape", "texture", "background")


def _mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                         nn.LeakyReLU(0.2), nn.Linear(hidden, out_features))


def _cnn(in_channels: int, height: int, width: int, hidden: int, out_features: int) -> nn.Sequential:
    """Stride-2 convolutions (32, 64, 128, 128 ... channels) down to a 4-pixel-high map, then an MLP head."""
    layers, channels = [], in_channels
    for stage in range(int(math.log2(height // 4))):
        out_channels = min(32 * 2**stage, 128)
        layers += [nn.Conv2d(channels, out_channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        channels, height, width = out_channels, height // 2, width // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * height * width, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, out_features))


class MappingNetwork(nn.Module):
    """(camera, shape, texture, background) -> W* [B, num_ws, w_dim] (module docstring)."""

    def __init__(self,
                 num_ws: int = 10,               # W* entries of the generator.
                 w_dim: int = 128,               # Width of each W* entry.
                 view_layers: int = 2,           # Leading W* entries that hold the view (W*_V).
                 view_dims: int = 64,            # Dimensions of W*_V that g_v drives (the paper: 144 of 2,048).
                 num_verts: int = 642,           # Vertices of the inverse network's template.
                 texture_height: int = 32,       # UV texture is texture_height x 2 texture_height.
                 resolution: int = 64,           # Background size (the generator's images).
                 hidden: int = 256,              # Hidden width of g_s, g_t and g_b (g_v: half of it).
                 ):
        super().__init__()
        if not 1 <= view_layers < num_ws:
            raise ValueError(f"view_layers must be from 1 to {num_ws - 1}, not {view_layers}.")
        if not 1 <= view_dims <= view_layers * w_dim:
            raise ValueError(f"view_dims must be from 1 to {view_layers * w_dim}, not {view_dims}.")
        for name, side in (("texture_height", texture_height), ("resolution", resolution)):
            if side < 8 or side & (side - 1):
                raise ValueError(f"{name} must be a power of two >= 8, not {side}.")
        self.init_kwargs = dict(num_ws=num_ws, w_dim=w_dim, view_layers=view_layers, view_dims=view_dims,
                                num_verts=num_verts, texture_height=texture_height, resolution=resolution,
                                hidden=hidden)
        self.num_ws, self.w_dim, self.view_layers = num_ws, w_dim, view_layers
        self.num_verts, self.texture_height, self.resolution = num_verts, texture_height, resolution
        content_dim = (num_ws - view_layers) * w_dim
        # Which flattened W*_V dimensions g_v drives (chosen before training: set_view_dims); the rest is constant.
        self.register_buffer("view_indices", torch.arange(view_dims))
        self.view_constant = nn.Parameter(torch.zeros(view_layers * w_dim))
        self.g_v = _mlp(4, hidden // 2, view_dims)
        # The shapes' mean and spread when start_from is given example shapes (cars differ by a few hundredths of a
        # unit; unscaled, g_s's output barely varies), else 0 and 1: g_s reads the vertices as they are.
        self.register_buffer("shape_mean", torch.zeros(num_verts * 3))
        self.register_buffer("shape_scale", torch.ones(()))
        self.g_s = _mlp(num_verts * 3, hidden, content_dim)
        self.g_t = _cnn(3, texture_height, 2 * texture_height, hidden, content_dim)
        self.g_b = _cnn(4, resolution, resolution, hidden, content_dim)
        self.mix_logits = nn.Parameter(torch.zeros(len(PROPERTIES), content_dim))

    @torch.no_grad()
    def start_from(self, view_indices: torch.Tensor, view_mean: torch.Tensor, content_mean: torch.Tensor,
                   shapes: torch.Tensor | None = None) -> None:
        """Before training: drive ``view_indices`` [view_dims] of W*_V, start every output at the mean codes
        (``view_mean`` [view_layers, w_dim], ``content_mean`` [num_ws - view_layers, w_dim]) and, given example
        ``shapes`` [N, num_verts, 3], standardise g_s's input by their mean and spread."""
        assert view_indices.shape == self.view_indices.shape, view_indices.shape
        self.view_indices.copy_(view_indices)
        if shapes is not None:
            flat = shapes.flatten(1)
            self.shape_mean.copy_(flat.mean(dim=0))
            self.shape_scale.copy_((flat - self.shape_mean).std().clamp_min(1e-6))
        self.view_constant.copy_(view_mean.flatten())
        self.g_v[-1].bias.copy_(view_mean.flatten()[view_indices])
        for net in (self.g_s, self.g_t, self.g_b):
            net[-1].bias.copy_(content_mean.flatten())

    def mixing_weights(self) -> torch.Tensor:
        """(s_m, s_t, s_b) [3, content_dim]: per dimension a softmax over the three properties."""
        return self.mix_logits.softmax(dim=0)

    def mixing_entropy(self) -> torch.Tensor:
        """Mean over dimensions of -sum_k s_k log s_k: 0 when each dimension listens to one property, log 3 at most."""
        s = self.mixing_weights()
        return -(s * s.clamp_min(1e-12).log()).sum(dim=0).mean()

    def view_codes(self, camera_vector: torch.Tensor) -> torch.Tensor:
        """camera vector [B, 4] -> W*_V [B, view_layers, w_dim]."""
        assert camera_vector.ndim == 2 and camera_vector.shape[1] == 4, camera_vector.shape
        batch = camera_vector.shape[0]
        codes = self.view_constant.expand(batch, -1).clone()
        codes[:, self.view_indices] = self.g_v(camera_vector)
        return codes.reshape(batch, self.view_layers, self.w_dim)

    def property_codes(self, verts: torch.Tensor, texture: torch.Tensor, background: torch.Tensor,
                       mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z_shape, z_txt, z_bck), each [B, content_dim]; shapes as in the module docstring."""
        batch = verts.shape[0]
        assert verts.shape == (batch, self.num_verts, 3), verts.shape
        assert texture.shape == (batch, 3, self.texture_height, 2 * self.texture_height), texture.shape
        assert background.shape == (batch, 3, self.resolution, self.resolution), background.shape
        assert mask.shape == (batch, 1, self.resolution, self.resolution), mask.shape
        shape = (verts.flatten(1) - self.shape_mean) / self.shape_scale
        return self.g_s(shape), self.g_t(texture * 2 - 1), self.background_code(background, mask)

    def background_code(self, background: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """z_bck [B, content_dim] of a background [B, 3, R, R] whose car pixels (mask [B, 1, R, R]) are 0."""
        return self.g_b(torch.cat((background * 2 - 1, mask), dim=1))

    def mix(self, z_shape: torch.Tensor, z_txt: torch.Tensor, z_bck: torch.Tensor) -> torch.Tensor:
        """W*_STB [B, num_ws - view_layers, w_dim] from the three property codes [B, content_dim]."""
        s = self.mixing_weights()
        mixed = s[0] * z_shape + s[1] * z_txt + s[2] * z_bck
        return mixed.reshape(mixed.shape[0], self.num_ws - self.view_layers, self.w_dim)

    def forward(self, camera_vector: torch.Tensor, verts: torch.Tensor, texture: torch.Tensor,
                background: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """W* [B, num_ws, w_dim] of the properties (module docstring)."""
        content = self.mix(*self.property_codes(verts, texture, background, mask))
        return torch.cat((self.view_codes(camera_vector), content), dim=1)


class StyleGANR(nn.Module):
    """The neural renderer: :class:`MappingNetwork` in front of a StyleGAN2 :class:`Generator`.

    ``reference_distance`` and ``fov_y`` are the camera conventions of the inverse-graphics network it was
    trained with (its camera vector); a camera with another field of view is rendered at the distance at which
    the car fills the frame alike (:meth:`camera_vector`).
    """

    def __init__(self,
                 generator: dict,                   # Generator init_kwargs (the StyleGAN2 it fine-tunes).
                 mapping: dict,                     # MappingNetwork init_kwargs.
                 reference_distance: float = 3.8,   # The inverse network's reference camera distance (object units).
                 fov_y: float = 30.0,               # The inverse network's vertical field of view (degrees).
                 ):
        super().__init__()
        self.init_kwargs = dict(generator=generator, mapping=mapping, reference_distance=reference_distance,
                                fov_y=fov_y)
        self.generator = Generator(**generator)
        self.mapping = MappingNetwork(**mapping)
        if (self.mapping.num_ws, self.mapping.w_dim, self.mapping.resolution) != (
                self.generator.num_ws, self.generator.w_dim, self.generator.img_resolution):
            raise ValueError("the mapping network's num_ws, w_dim and resolution must be the generator's.")
        self.reference_distance = reference_distance
        self.fov_y = fov_y

    @property
    def resolution(self) -> int:
        return self.generator.img_resolution

    def camera_vector(self, azimuth: torch.Tensor, elevation: torch.Tensor, distance: torch.Tensor,
                      fov_y: torch.Tensor | None = None) -> torch.Tensor:
        """Camera vectors [B, 4] of cameras (degrees, object units; each [B]): a field of view other than the
        model's becomes the distance at which the car appears as large (d tan(fov / 2) / tan(fov_model / 2))."""
        if fov_y is not None:
            distance = distance * torch.tan(torch.deg2rad(fov_y) / 2) / math.tan(math.radians(self.fov_y) / 2)
        distance = distance.float()
        camera = Camera(azimuth.float(), elevation.float(), distance, torch.full_like(distance, self.fov_y))
        return camera_to_vector(camera, self.reference_distance)

    def to_canvas(self, images: torch.Tensor) -> torch.Tensor:
        """Square images [B, C, s, s] in the inverse network's framing (a reconstruction's photo or mask, a render
        in the predicted camera) -> [B, C, R, R] as the generator frames its content: resized (bilinear,
        antialiased) to its content box (:attr:`Generator.img_crop`, the whole canvas for a square generator)
        and centred in a black canvas. The inverse of how training shows the generator's images to the inverse
        network (the content box, area-resized to its input)."""
        top, bottom, left, right = self.generator.img_crop
        images = F.interpolate(images, size=(bottom - top, right - left), mode="bilinear", align_corners=False,
                               antialias=True)
        return F.pad(images, (left, self.resolution - right, top, self.resolution - bottom))

    def synthesize(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """W* [B, num_ws, w_dim] -> images [B, 3, R, R] in [0, 1] (unclamped while training needs gradients)."""
        return (self.generator.synthesis(ws, noise_mode=noise_mode) + 1) / 2

    def forward(self, camera_vector: torch.Tensor, verts: torch.Tensor, texture: torch.Tensor,
                background: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, R, R] in [0, 1] of the properties (module docstring) seen from the cameras."""
        return self.synthesize(self.mapping(camera_vector, verts, texture, background, mask)).clamp(0, 1)
