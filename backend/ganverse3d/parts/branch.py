"""The inverse network's part branch: a car's parts as a texture on the template's UVs (DatasetGAN's parts in 3D).

The seed slides' "single-image 3D asset creation": besides its mesh and colour texture, the inverse-graphics
network predicts a *part texture* - per texel the logits of the car's parts (:data:`PART_NAMES`: body, window,
wheel, headlight, taillight, plate) - trained with cross-entropy on the part labels of a multi-view dataset
through the renderer: the predicted mesh, seen from any view's camera, must show that view's parts where the
car is (:mod:`.train_branch`). The inverse network stays frozen; :class:`PartBranch` reads its image code
(:meth:`InverseGraphicsNet.image_code`) through a decoder of the texture decoder's kind and, at the texture's
resolution, its predicted colour texture, which lies on the same UVs: dark glass and bright lamps are where the
texture shows them.

What the part texture gives:

* :func:`face_part_labels`: one part per face of the mesh (the ``_PART`` of an exported .glb, the material
  slots in Blender, the wheel fitting of :mod:`ganverse3d.geometry.wheels`), on the mesh split by
  :func:`split_for_parts` first: the network's 1,280 faces are coarser than a lamp.
* :func:`render_part_labels`: the part segmentation of the predicted mesh from any camera, how the part branch
  is measured against the truth (``benchmarks/bm_parts3d.py``).

Part ids index :data:`PART_NAMES`; images of part labels use -1 where no car is.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..geometry import Camera
from ..geometry.mesh import split_corners, split_faces
from ..inverse.model import UVPad, uv_upsample_stage
from ..render import render_mesh, sample_texture
from ..world.cars import PART_LABELS

PART_NAMES = PART_LABELS
# How often a mesh's faces are split 1-to-4 before each gets a part: twice (1,280 -> 20,480 faces) reads the part
# texture as finely as a render of it does (benchmarks/bm_parts3d.py; once: parts mIoU 0.500, twice 0.515).
PART_MESH_SPLITS = 2


class PartBranch(nn.Module):
    """Image codes [B, feature_dim] and colour textures [B, 3, Ht, 2 Ht] -> part logits [B, P, Ht, 2 Ht] on the
    inverse network's template UVs."""

    def __init__(self,
                 feature_dim: int = 256,      # Size of the inverse network's image code (its feature_dim).
                 texture_height: int = 32,    # Part texture is texture_height x (2 * texture_height), power of two.
                 channels: int = 64,          # Channels at the 4 x 8 start of the decoder; halved per step, >= 16.
                 part_names: tuple[str, ...] = PART_NAMES,  # What the P output channels are, in order.
                 ):
        super().__init__()
        if texture_height < 4 or texture_height & (texture_height - 1):
            raise ValueError(f"texture_height must be a power of two >= 4, not {texture_height}.")
        if len(part_names) < 2:
            raise ValueError("A part branch tells at least two parts apart.")
        self.init_kwargs = dict(feature_dim=feature_dim, texture_height=texture_height, channels=channels,
                                part_names=list(part_names))
        self.feature_dim = feature_dim
        self.texture_height = texture_height
        self.channels = channels
        self.part_names = tuple(part_names)
        self.start = nn.Sequential(nn.Linear(feature_dim, channels * 4 * 8), nn.LeakyReLU(0.2))
        stages, width = [], channels
        for _ in range(int(math.log2(texture_height // 4))):
            stages.append(uv_upsample_stage(width, max(width // 2, 16)))
            width = max(width // 2, 16)
        self.decoder = nn.Sequential(*stages)
        self.head = nn.Sequential(UVPad(), nn.Conv2d(width + 3, width, 3), nn.LeakyReLU(0.2),
                                  nn.Conv2d(width, len(part_names), 1))

    def forward(self, code: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
        batch, size = code.shape[0], (self.texture_height, 2 * self.texture_height)
        assert code.dim() == 2 and code.shape[1] == self.feature_dim, code.shape
        assert texture.shape == (batch, 3, *size), texture.shape
        features = self.decoder(self.start(code).reshape(batch, self.channels, 4, 8))
        logits = self.head(torch.cat((features, texture * 2 - 1), dim=1))
        assert logits.shape[1:] == (len(self.part_names), *size), logits.shape
        return logits


def render_part_logits(verts: torch.Tensor, faces: torch.Tensor, face_uvs: torch.Tensor, logits: torch.Tensor,
                       cameras: Camera, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The part logits a camera sees on the mesh: (logits [B, P, S, S], covered [B, S, S] bool).

    verts [B, V, 3] object space; faces [F, 3]; face_uvs [F, 3, 2] (the template's); logits [B, P, Ht, 2 Ht]
    (:class:`PartBranch`); ``cameras`` a batch of B; S = ``size``. Differentiable w.r.t. ``logits`` (bilinear
    texture lookups, as the colour texture's); 0 where the mesh does not cover a pixel.
    """
    out = render_mesh(verts, faces, face_uvs, logits, cameras, size, soft=False)
    return out.image, out.face_index >= 0


@torch.no_grad()
def render_part_labels(verts: torch.Tensor, faces: torch.Tensor, face_uvs: torch.Tensor, logits: torch.Tensor,
                       cameras: Camera, size: int) -> torch.Tensor:
    """Part ids [B, S, S] int64 of the mesh seen by ``cameras`` (arguments of :func:`render_part_logits`); -1
    where the mesh is not."""
    image, covered = render_part_logits(verts, faces, face_uvs, logits, cameras, size)
    return torch.where(covered, image.argmax(dim=1), torch.full_like(covered, -1, dtype=torch.int64))


@torch.no_grad()
def render_face_labels(verts: torch.Tensor, faces: torch.Tensor, face_labels: torch.Tensor, cameras: Camera,
                       size: int) -> torch.Tensor:
    """Part ids [B, S, S] int64 of meshes with one part per face (a world car's truth, an exported car) seen by
    ``cameras``: verts [B, V, 3], faces [F, 3], face_labels [F] (shared) or [B, F] int64; -1 where no mesh is."""
    batch = verts.shape[0]
    blank_uvs = verts.new_zeros(faces.shape[0], 3, 2)
    out = render_mesh(verts, faces, blank_uvs, verts.new_zeros(batch, 1, 1, 1), cameras, size, soft=False)
    labels = face_labels.to(verts.device).expand(batch, -1)
    found = labels.gather(1, out.face_index.clamp_min(0).flatten(1)).reshape(out.face_index.shape)
    return torch.where(out.face_index >= 0, found, -1)


def split_for_parts(verts: torch.Tensor, faces: torch.Tensor, *corners: torch.Tensor):
    """A mesh split :data:`PART_MESH_SPLITS` times (``geometry.mesh.split_faces``: the same surface): verts
    [..., V, 3], faces [F, 3] and any per-corner attributes [F, 3, C] (UVs) -> (verts, faces, *attributes) of the
    split mesh, 16 faces per face."""
    for _ in range(PART_MESH_SPLITS):
        verts, faces = split_faces(verts, faces)
        corners = tuple(split_corners(attribute) for attribute in corners)
    return (verts, faces, *corners)


@torch.no_grad()
def face_part_labels(logits: torch.Tensor, face_uvs: torch.Tensor) -> torch.Tensor:
    """One part id per face [B, F] int64 from part textures ``logits`` [B, P, Ht, 2 Ht] on ``face_uvs`` [F, 3, 2]:
    the part of highest mean logit over the face's corners, edge midpoints and centre (seven samples, so a face
    across a part's border goes to the part covering most of it). Logits, not probabilities, are averaged, as a
    render's bilinear lookup interpolates them (:func:`render_part_labels`): averaged probabilities shrink the
    small parts (parts mIoU 0.461 against 0.500 on faces split once)."""
    corners = face_uvs.to(logits.dtype)
    points = torch.cat((corners, (corners + corners.roll(1, dims=1)) / 2, corners.mean(dim=1, keepdim=True)), dim=1)
    batch, samples = logits.shape[0], points.shape[0] * points.shape[1]                 # points [F, 7, 2]
    batch_index = torch.arange(batch, device=logits.device).repeat_interleave(samples)
    # The renderer's own texture lookup (u wraps around the seam at the back, v is clamped), so a face reads what
    # a render of the part texture shows on it.
    probability = sample_texture(logits, points.reshape(-1, 2).repeat(batch, 1), batch_index)
    return probability.reshape(batch, *points.shape[:2], -1).mean(dim=2).argmax(dim=-1)
