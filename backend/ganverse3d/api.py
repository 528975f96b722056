"""The facade the CLI and the Blender worker call.

:func:`reconstruct` turns one photo of a car into a textured mesh (paper Sec. 4.1, user side):

1. read the photo: any format Pillow reads, at least :data:`MIN_PHOTO_SIDE` pixels on each side, EXIF
   orientation applied, grayscale / 16-bit / palette images converted to 8-bit RGB (16-bit ones scaled by the
   bits they use); an alpha channel that is not fully opaque is the car's mask;
2. find the car: the given mask, the alpha, or a segmenter (``ganverse3d.dataset.segment.segment_photo``);
   exactly one car must be found (components smaller than ``MIN_CAR_AREA`` of the image are ignored), one
   the segmenter is confident of, with at least as many pixels as the network sees;
3. frame it as the training data frames its cars: a square crop around the car whose size and offset
   match the median of the training masks (recorded in the model bundle); first with the overall median,
   then again with the median of the azimuth bin the first prediction falls in (a front view fills less of
   the frame than a side view);
4. predict mesh, UV texture and camera with the inverse-graphics network;
5. refine the camera's azimuth by the car's silhouette: of the estimate turned by up to 10 degrees either way,
   keep the one under which the predicted mesh's silhouette best matches the mask (``ganverse3d.inverse.camera_search``);
6. with ``fit_steps`` > 0, fit mesh (mirror-symmetric), proportions, camera and texture to the framed photo and
   its mask through the differentiable renderer (``ganverse3d.inverse.fitting``); 0, the default, skips it;
7. with the model's part branch (``ganverse3d.parts.branch``; the shipped models' own, or ``part_branch``), split
   every face of the mesh into 16 and label each with a part (body, window, wheel, headlight, taillight, plate):
   ``part_mesh``;
8. with a ``texture_size``, bake the photo itself into a texture of that height (and twice the width): the
   framed crop, taken again from the photo at up to ``texture_size`` pixels, projected through the camera onto
   the faces it sees, the mirrored side onto those it does not, the network's texture where neither reaches
   (``ganverse3d.render.projection``); None, the default, keeps the network's texture.

Photos are never written by this module; :func:`write_reconstruction` writes the mesh and its turntable sheet.
:func:`write_render` renders a mesh file with the project's renderer into an image (and its mask).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .dataset.segment import bounding_box, crop_resize, load_segmenter, segment_photo, single_car
from .errors import InputError, setting
from .export import TexturedMesh, encode_mesh, mesh_files, part_aware_car
from .files import check_output_file, check_outputs, image_grid, is_file, png_bytes, shown_path, write_files
from .geometry import Camera, azimuth_bins
from .geometry.wheels import photo_wheel_colours
from .render.turntable import BACKGROUND_GREY, normalise_verts, render_turntable, turntable_cameras, turntable_rows

# Larger photos are refused before decoding: 50 megapixels covers every common camera.
MAX_PIXELS = 50_000_000
# Photos with a shorter side are refused before decoding: too few pixels to hold a car.
MIN_PHOTO_SIDE = 32
# Side of the framed crop returned as the image / background / mask of a reconstruction.
FRAMED_SIZE = 256
# Most test-time fitting steps: a few hundred suffice (benchmarks/bm_generalisation.py); more is a typo or minutes of CPU.
MAX_FIT_STEPS = 2000
# Heights of a texture baked from the photo (its width is twice that): 4096 x 8192 is already 100 MB of floats.
MIN_TEXTURE_SIZE, MAX_TEXTURE_SIZE = 512, 4096


@dataclass(frozen=True)
class Quality:
    """A preset of :func:`reconstruct`'s effort: ``fit_steps`` and ``texture_size`` (0 = the network's texture)."""

    fit_steps: int
    texture_size: int


# Chosen from benchmarks/bm_generalisation.py (README, "How good is it"); "fast" is the network's prediction.
QUALITIES = {"fast": Quality(fit_steps=0, texture_size=0), "balanced": Quality(fit_steps=50, texture_size=1024),
             "best": Quality(fit_steps=200, texture_size=2048)}
DEFAULT_QUALITY = "fast"


@dataclass
class Reconstruction:
    """A car reconstructed from one photo.

    Attributes:
        mesh: the textured mesh in object space (+Y up, front +Z), UV texture from the network.
        camera: :class:`Camera` of batch size 1: where the camera of the framed crop stands (degrees,
            object units, the model's vertical field of view).
        background: [3, S, S] float32 in [0, 1], the framed crop with the car's pixels set to 0 (the paper's
            background for neural rendering), S = :data:`FRAMED_SIZE`.
        mask: [1, S, S] float32 in [0, 1], the car in the framed crop.
        image: [3, S, S] float32, the framed crop.
        crop: (left, top, size) of the square crop in the (EXIF-oriented) photo's pixels; it may reach past
            the photo's border, where edge pixels were repeated.
        network_texture: [3, Ht, 2 Ht] float32 in [0, 1], the texture on the inverse network's template UVs
            (after fitting, before any baking): what StyleGAN-R reads as the car's texture.
        part_mesh: with a part branch, the mesh with every face split into 16 (the same surface,
            ``parts.branch.split_for_parts``: finer faces keep a headlight or a plate) and one part per face
            (``part_labels``, ids of ``ganverse3d.parts.branch.PART_NAMES``): what export and Blender get; None
            without one.
        sources: the files it was made from, ``{"photo": path, "mask": path}`` for those given as paths
            (:func:`write_reconstruction` never replaces them).
    """

    mesh: TexturedMesh
    camera: Camera
    background: torch.Tensor
    mask: torch.Tensor
    image: torch.Tensor
    crop: tuple[float, float, float]
    network_texture: torch.Tensor
    part_mesh: TexturedMesh | None = None
    sources: dict[str, Path] = field(default_factory=dict)

    def wheel_colours(self, wheels) -> dict[str, tuple[float, float, float]]:
        """The tyre's and rim's colours of ``wheels`` (``geometry.wheels.Wheel`` fitted to :attr:`part_mesh`) as
        the framed photo shows them (``geometry.wheels.photo_wheel_colours``: linear RGB; empty when no wheel
        is seen well enough)."""
        return photo_wheel_colours(wheels, self.camera, self.image, self.mask)


# ---------------------------------------------------------------------------------------------------
# Reading photos and masks

# Bit depths that 16-bit image containers commonly hold (8-bit data, 10- to 14-bit sensors, full 16-bit).
_CONTAINER_BITS = (8, 10, 12, 14, 16)


def _grey_to_rgb(grey: np.ndarray, full_scale: float) -> Image.Image:
    """Grey levels [H, W] in [0, full_scale] -> an 8-bit RGB image (values outside are clipped)."""
    levels = (np.clip(grey / full_scale, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(levels).convert("RGB")


def _to_rgb_and_alpha(image: Image.Image) -> tuple[Image.Image, np.ndarray | None]:
    """A decoded Pillow image -> (8-bit RGB image, alpha uint8 [H, W] or None when fully opaque/absent).

    An image that is RGB already is returned as it is: a phone photo is never copied here.
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale (PNG/TIFF open as I;16 or I). Such files often hold fewer bits - 8-bit values
        # written by a converter, a 12-bit sensor - so the full scale is that of the fewest bits that hold the
        # brightest pixel: a 12-bit photo must not be read as a nearly black 16-bit one.
        grey = np.asarray(image)
        brightest = int(grey.max(initial=0))
        bits = next((bits for bits in _CONTAINER_BITS if brightest < 2**bits), _CONTAINER_BITS[-1])
        return _grey_to_rgb(grey.astype(np.float32), 2**bits - 1), None
    if image.mode == "F":
        grey = np.asarray(image)
        return _grey_to_rgb(grey, 255.0 if grey.max(initial=0) > 1 else 1.0), None
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"))
        return rgba.convert("RGB"), (alpha if int(alpha.min()) < 255 else None)
    return (image if image.mode == "RGB" else image.convert("RGB")), None


def _check_size(width: int, height: int, name: str, min_side: int) -> None:
    """InputError for an image (``name``, e.g. "The photo x.jpg") too large to decode safely, or with a side
    shorter than ``min_side``; checked before decoding."""
    if width * height > MAX_PIXELS:
        raise InputError(f"{name} has {width} x {height} pixels, more than the {MAX_PIXELS // 1_000_000} "
                         f"megapixels this program accepts; scale it down first.")
    if min(width, height) < min_side:
        raise InputError(f"{name} has {width} x {height} pixels, too few to hold a car; give one at least "
                         f"{min_side} pixels on each side.")


def _open_image(path, what: str, min_side: int = 1) -> Image.Image:
    """Open and fully decode an image file, EXIF orientation applied; InputError for anything unusable,
    including a side shorter than ``min_side`` (found from the header, before decoding)."""
    path = Path(path)
    name = f"The {what} {shown_path(path)}"
    if not is_file(path):
        raise InputError(f"{name} does not exist.")
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        raise InputError(f"{name} is not an image file this program can read.") from None
    except Image.DecompressionBombError:
        raise InputError(f"{name} is too large to decode safely; scale it down first.") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise InputError(f"{name} is damaged or truncated.") from None
    try:
        _check_size(image.width, image.height, name, min_side)
        # In place: an upright photo is not copied (Pillow closes the file once the pixels are loaded).
        ImageOps.exif_transpose(image, in_place=True)
        return image
    except InputError:  # a ValueError too: keep it from the damaged-file branch below
        image.close()
        raise
    except (OSError, SyntaxError, ValueError, EOFError):
        image.close()
        raise InputError(f"{name} is damaged or truncated.") from None


def _load_photo(image) -> tuple[Image.Image, np.ndarray | None]:
    """A photo in any form :func:`read_photo` takes -> (8-bit RGB Pillow image, alpha uint8 [H, W] or None)."""
    if isinstance(image, (str, os.PathLike)):
        image = _open_image(image, "photo", MIN_PHOTO_SIDE)
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, "The photo", MIN_PHOTO_SIDE)
        return _to_rgb_and_alpha(image)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] not in (3, 4):
            raise InputError(f"A photo tensor must have shape [3, H, W] or [4, H, W], not {list(image.shape)}.")
        _check_size(image.shape[2], image.shape[1], "The photo", MIN_PHOTO_SIDE)
        image = (image.detach().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InputError("A photo array must be uint8 with shape [H, W, 3] or [H, W, 4].")
    _check_size(array.shape[1], array.shape[0], "The photo", MIN_PHOTO_SIDE)
    alpha = array[..., 3] if array.shape[2] == 4 and int(array[..., 3].min()) < 255 else None
    return Image.fromarray(np.ascontiguousarray(array[..., :3])), alpha


def read_photo(image) -> tuple[np.ndarray, np.ndarray | None]:
    """A photo (path, PIL image, uint8 array [H, W, 3|4], or float tensor [3|4, H, W] in [0, 1]) ->
    (uint8 RGB [H, W, 3], alpha uint8 [H, W] or None). Photos with a side under :data:`MIN_PHOTO_SIDE`
    pixels are refused before decoding."""
    photo, alpha = _load_photo(image)
    return np.asarray(photo), alpha


def read_mask(mask, size: tuple[int, int]) -> np.ndarray:
    """A mask (path, PIL image, array [H, W] or tensor [1, H, W] / [H, W]; white or > 0.5 = car) -> bool
    [H, W]; it must match the photo's ``size`` (H, W) after EXIF orientation."""
    if isinstance(mask, (str, os.PathLike)):
        mask = _open_image(mask, "mask")
    if isinstance(mask, Image.Image):
        rgb, alpha = _to_rgb_and_alpha(mask)
        array = (alpha if alpha is not None else np.asarray(rgb.convert("L"))) > 127
    else:
        values = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        values = values[0] if values.ndim == 3 and values.shape[0] == 1 else values
        if values.ndim != 2:
            raise InputError(f"A mask must be one channel [H, W], not shape {list(values.shape)}.")
        array = values > (127 if values.dtype == np.uint8 else 0.5)
    if array.shape != tuple(size):
        raise InputError(f"The mask is {array.shape[1]} x {array.shape[0]} pixels but the photo is "
                         f"{size[1]} x {size[0]}; they must match.")
    return array


_SEGMENTER_CACHE: dict[tuple, object] = {}


def _segmenter(spec: str, device):
    """The segmenter of ``spec``, loaded once per spec and device (the worker reconstructs many photos)."""
    key = (spec, str(device))
    if key not in _SEGMENTER_CACHE:
        _SEGMENTER_CACHE.clear()
        _SEGMENTER_CACHE[key] = load_segmenter(spec, device=device)
    return _SEGMENTER_CACHE[key]


def check_car_size(car: np.ndarray, min_length: int) -> None:
    """InputError when the car (bool mask [H, W]) spans fewer than ``min_length`` pixels of the photo."""
    left, top, right, bottom = bounding_box(car)
    length = max(right - left, bottom - top)
    if length < min_length:
        raise InputError(f"The car is only {length} pixels long in the photo, too small to reconstruct; give a "
                         f"photo in which it spans at least {min_length} pixels.")


# ---------------------------------------------------------------------------------------------------
# Framing


def crop_box(mask: np.ndarray, fill: float, centre) -> tuple[float, float, float]:
    """The square (left, top, size) in which the mask's bounding box has longer side ``fill`` * size and
    centre offset ``centre`` (x, y, in crop sides, y down) from the crop centre, as training images do."""
    left, top, right, bottom = bounding_box(mask)
    size = max(bottom - top, right - left) / fill
    centre_x = (left + right) / 2 - centre[0] * size
    centre_y = (top + bottom) / 2 - centre[1] * size
    return float(centre_x - size / 2), float(centre_y - size / 2), float(size)


def _framed(photo: Image.Image, car: Image.Image, box, size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``box`` of the photo (RGB) and of the car's mask (L, 255 = car), resampled to size²: image
    [3, size, size] and mask [1, size, size], float32 in [0, 1] on ``device``."""
    image = torch.from_numpy(crop_resize(photo, box, size, edge=True)).permute(2, 0, 1).float() / 255
    mask = torch.from_numpy(crop_resize(car, box, size, edge=False)).float()[None] / 255
    return image.to(device), mask.to(device)


# ---------------------------------------------------------------------------------------------------
# Models

_MODEL_CACHE: dict[tuple, tuple] = {}


def load_inverse_model(model=None, device="auto"):
    """(model, framing) of an inverse-graphics bundle (a path or a shipped model's name, see
    :func:`ganverse3d.assets.resolve`), cached per file and device."""
    from .assets import resolve
    from .bundle import load_module, read_metadata
    from .devices import resolve_device
    from .inverse import InverseGraphicsNet

    path, device = resolve("inverse", model), resolve_device(device)
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(device))
    if key not in _MODEL_CACHE:
        model = load_module(path, InverseGraphicsNet, device=device)
        framing = read_metadata(path)["config"].get("framing")
        if framing is None:
            raise InputError(f"{path} does not record how its training data frames cars; retrain it with this version.")
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = (model, framing)
    return _MODEL_CACHE[key]


# No part branch: ``part_branch="none"``.
NO_PART_BRANCH = "none"
_PART_BRANCH_CACHE: dict[tuple, object] = {}


def load_part_branch(model=None, part_branch=None, device="auto"):
    """The part branch (``ganverse3d.parts.branch.PartBranch``) that labels the faces of ``model``'s meshes, or
    None for none.

    ``part_branch`` None takes the shipped branch of the shipped ``model`` (same name; none for a model given as a
    file); "none" turns parts off; anything else is a branch's name or file, which must have been trained on
    ``model`` (its bundle records the model file's sha256). Cached per file and device.
    """
    from .assets import lookup, resolve, shipped
    from .bundle import load_module, read_metadata
    from .dataset.segment import file_sha256
    from .devices import resolve_device
    from .parts.branch import PartBranch

    if part_branch == NO_PART_BRANCH:
        return None
    model_path = resolve("inverse", model)
    if part_branch is None:
        shipped_model = next((asset for asset in shipped("inverse") if asset.path == model_path.resolve()), None)
        if shipped_model is None or lookup("part_branch", shipped_model.name) is None:
            return None
        path = resolve("part_branch", shipped_model.name)  # one sentence when the shipped file is missing
    else:
        path = resolve("part_branch", part_branch)
    device = resolve_device(device)
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(model_path.resolve()), str(device))
    if key not in _PART_BRANCH_CACHE:
        branch = load_module(path, PartBranch, device=device).eval()  # first: is it a part branch at all
        if read_metadata(path)["provenance"].get("inverse_sha256") != file_sha256(model_path):
            raise InputError(f"The {setting('part_branch')} {shown_path(path)} was trained on another "
                             f"inverse-graphics model than the {setting('model')} {shown_path(model_path)}; give the "
                             f"branch trained on it, or {NO_PART_BRANCH!r}.")
        _PART_BRANCH_CACHE.clear()
        _PART_BRANCH_CACHE[key] = branch
    return _PART_BRANCH_CACHE[key]


# ---------------------------------------------------------------------------------------------------
# The facade


def check_fit_steps(fit_steps) -> int:
    """``fit_steps`` as an int; InputError unless it is a whole number from 0 to :data:`MAX_FIT_STEPS`."""
    if isinstance(fit_steps, bool) or not isinstance(fit_steps, int) or not 0 <= fit_steps <= MAX_FIT_STEPS:
        raise InputError(f"{setting('fit_steps')} must be a whole number from 0 to {MAX_FIT_STEPS}, "
                         f"not {str(fit_steps)[:40]}.")
    return fit_steps


def check_texture_size(texture_size):
    """``texture_size`` as given (None, 0 or an int); InputError unless None (the quality's), 0 (the network's
    texture) or a whole number from :data:`MIN_TEXTURE_SIZE` to :data:`MAX_TEXTURE_SIZE`."""
    if texture_size is None:
        return None
    if (isinstance(texture_size, bool) or not isinstance(texture_size, int)
            or not (texture_size == 0 or MIN_TEXTURE_SIZE <= texture_size <= MAX_TEXTURE_SIZE)):
        raise InputError(f"{setting('texture_size')} must be 0 (the network's texture) or a whole number of pixels "
                         f"from {MIN_TEXTURE_SIZE} to {MAX_TEXTURE_SIZE}, not {str(texture_size)[:40]}.")
    return texture_size


def check_quality(quality) -> Quality:
    """The preset named ``quality``; InputError unless it is one of :data:`QUALITIES`."""
    if not isinstance(quality, str) or quality not in QUALITIES:
        raise InputError(f"{setting('quality')} must be one of {', '.join(QUALITIES)}, not {str(quality)[:40]}.")
    return QUALITIES[quality]


@torch.no_grad()
def reconstruct(image, mask=None, model=None, segmenter: str = "world", device="auto",
                quality: str = DEFAULT_QUALITY, fit_steps: int | None = None,
                texture_size: int | None = None, part_branch: str | None = None) -> Reconstruction:
    """One photo of one car -> :class:`Reconstruction` (see the module docstring for the steps).

    Args:
        image: a path, a PIL image, a uint8 array [H, W, 3|4] or a float tensor [3|4, H, W] in [0, 1].
        mask: the car's mask in the same forms ([H, W] / [1, H, W]; white / > 0.5 = car), or None to use the
            photo's alpha channel or else the segmenter.
        model: path of an inverse-graphics bundle, or the name of an embedded one ("oracle", the default, or
            "gan", trained the paper's way); None = the default.
        segmenter: segmenter spec for photos without mask or alpha (``world``, ``maskrcnn:PATH``, ...).
        device: "auto", "cpu" or "cuda".
        quality: a preset of :data:`QUALITIES` ("fast", "balanced", "best") giving fit_steps and texture_size
            where they are None.
        fit_steps: steps of test-time fitting to the photo (``ganverse3d.inverse.fitting``), 0 to
            :data:`MAX_FIT_STEPS`; 0 returns the network's prediction after the azimuth search.
        texture_size: 0 keeps the network's texture; a height from :data:`MIN_TEXTURE_SIZE` to
            :data:`MAX_TEXTURE_SIZE` bakes the photo into a texture of that height and twice the width (after
            the fitting, when there is one).
        part_branch: None (the shipped model's own part branch, if it has one), "none", or a part branch's
            file trained on ``model`` (:func:`load_part_branch`); with one, the result has a ``part_mesh``.

    Raises:
        InputError: unreadable / damaged / oversized / tiny photo or mask, no car, several cars, a car the
            segmenter is unsure of or one too small to reconstruct, no model, an unknown quality, fit_steps or
            texture_size out of range.
    """
    from .devices import resolve_device
    from .inverse.camera_search import search_camera
    from .inverse.fitting import FitSettings, fit_to_photo
    from .parts.branch import face_part_labels, split_for_parts

    preset = check_quality(quality)
    fit_steps = check_fit_steps(preset.fit_steps if fit_steps is None else fit_steps)
    texture_size = check_texture_size(preset.texture_size if texture_size is None else texture_size)

    photo, alpha = _load_photo(image)
    size = (photo.height, photo.width)
    if mask is not None:
        car = single_car(read_mask(mask, size), "the mask")
    elif alpha is not None:
        car = single_car(alpha > 127, "the photo's alpha channel")
    else:
        car = None
    net, framing = load_inverse_model(model, device)
    branch = load_part_branch(model, part_branch, device)
    device = resolve_device(device)
    if car is None:
        car = segment_photo(photo, _segmenter(segmenter, device))
    # The network sees the car resolution * fill pixels long (54 for the embedded model): a car with fewer
    # pixels in the photo would only reach it as an enlarged blur.
    check_car_size(car, math.ceil(net.resolution * framing["fill"]))

    # Photo and mask as Pillow images: each crop below reads only the pixels it needs, copying nothing.
    car_image = Image.fromarray(car).convert("L")
    resolution = net.resolution
    box = crop_box(car, framing["fill"], framing["centre"])
    net_image, net_mask = (t[None] for t in _framed(photo, car_image, box, resolution, device))
    prediction = net(net_image, net_mask)
    view_bin = int(azimuth_bins(float(prediction.camera.azimuth[0])))
    if framing["bin_fill"][view_bin] is not None:
        box = crop_box(car, framing["bin_fill"][view_bin], framing["bin_centre"][view_bin])
        net_image, net_mask = (t[None] for t in _framed(photo, car_image, box, resolution, device))
        prediction = net(net_image, net_mask)

    image_crop, mask_crop = _framed(photo, car_image, box, FRAMED_SIZE, "cpu")
    verts, texture = prediction.verts, prediction.texture
    camera = search_camera(prediction, net.faces, net.face_uvs, net_mask)[0]
    if fit_steps:
        fitted = fit_to_photo(net.template_verts, net.faces, net.face_uvs, net.mirror, prediction.offsets,
                              prediction.scale, prediction.translation, texture, camera, net_image, net_mask,
                              FitSettings(steps=fit_steps))
        verts, texture, camera = fitted.verts, fitted.texture, fitted.camera
    face_uvs, network_texture = net.face_uvs, texture[0].detach().cpu()
    if texture_size:
        face_uvs, texture = _photo_texture(photo, car_image, box, verts[0], net.faces, net.face_uvs, camera,
                                           texture[0], texture_size)
        texture = texture[None]
    mesh = TexturedMesh(verts[0].detach(), net.faces.cpu(), face_uvs.cpu(), texture[0].detach())
    part_mesh = None
    if branch is not None:
        part_texture = branch(net.image_code(net_image, net_mask), prediction.texture)
        split_verts, split, split_uvs, split_network_uvs = split_for_parts(mesh.verts, mesh.faces, mesh.face_uvs,
                                                                           net.face_uvs.cpu())
        part_labels = face_part_labels(part_texture.cpu(), split_network_uvs)[0]
        part_mesh = TexturedMesh(split_verts, split, split_uvs, mesh.texture, part_labels)
    camera = camera.to(device="cpu")
    sources = {what: Path(source) for what, source in (("photo", image), ("mask", mask))
               if isinstance(source, (str, os.PathLike))}
    return Reconstruction(mesh=mesh, camera=camera, background=image_crop * (mask_crop <= 0.5), mask=mask_crop,
                          image=image_crop, crop=box, network_texture=network_texture, part_mesh=part_mesh,
                          sources=sources)


def _photo_texture(photo: Image.Image, car: Image.Image, box, verts, faces, face_uvs, camera: Camera, texture,
                   texture_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A UV atlas of the mesh (``ganverse3d.render.atlas``), per-face UVs [F, 3, 2], and the photo baked into a
    [3, texture_size, 2 texture_size] texture on it (``ganverse3d.render.projection``): the crop ``box`` the
    camera sees, resampled to its own pixels but at most ``texture_size`` (about the texels the half of the
    car a photo shows gets), with the car's mask; the network's ``texture`` (on ``face_uvs``) where it says
    nothing."""
    from .render.atlas import uv_atlas
    from .render.projection import project_photo

    side = max(FRAMED_SIZE, min(round(box[2]), texture_size))
    region, region_mask = _framed(photo, car, box, side, verts.device)
    atlas_uvs = uv_atlas(verts, faces)
    return atlas_uvs, project_photo(verts, faces, face_uvs, camera[:1], region, texture, atlas_uvs, texture_size,
                                    mask=region_mask)


def turntable_sheet(reconstruction: Reconstruction, size: int = 128) -> torch.Tensor:
    """[3, H, W] sheet: the framed photo, then the mesh from 6 azimuths (lit, on grey); with a part mesh a second
    row shows each face's part in the palette of ``ganverse3d.parts.PALETTE`` from the same azimuths."""
    from .parts.branch import render_face_labels
    from .parts.interpreter import colourise

    mesh, part_mesh = reconstruction.mesh, reconstruction.part_mesh
    with torch.no_grad():
        views, _ = render_turntable(mesh.verts, mesh.faces, mesh.face_uvs, mesh.texture, size=size)
        tiles = turntable_rows(reconstruction.image, views)
        if part_mesh is not None:
            cameras = turntable_cameras()
            labels = render_face_labels(normalise_verts(part_mesh.verts)[None].expand(len(cameras), -1, -1),
                                        part_mesh.faces, part_mesh.part_labels, cameras, size)
            parts = torch.where(labels[:, None] >= 0, colourise(labels + 1), BACKGROUND_GREY)
            tiles = torch.cat((tiles, torch.full_like(tiles[:1], 1.0), parts))
    return image_grid(tiles, columns=len(views) + 1)


def turntable_path(out) -> Path:
    """Where the turntable sheet of a mesh written to ``out`` goes: ``NAME_turntable.png`` beside it."""
    out = Path(out)
    return out.with_name(out.stem + "_turntable.png")


def reconstruction_files(out) -> list[Path]:
    """Every file :func:`write_reconstruction` writes for ``out``: the mesh's (``ganverse3d.export.mesh_files``)
    and the turntable sheet."""
    return mesh_files(out) + [turntable_path(out)]


def check_mesh_output(out, inputs: dict | None = None) -> Path:
    """InputError unless ``out`` is a writable .glb / .obj path none of whose files (:func:`reconstruction_files`)
    is a folder or one of ``inputs`` (see :func:`ganverse3d.files.check_not_an_input`); checked before any work
    is done."""
    out = check_output_file(out, (".glb", ".obj"))
    check_outputs(reconstruction_files(out), inputs, "out_path")
    return out


def write_reconstruction(reconstruction: Reconstruction, out) -> list[Path]:
    """Write the mesh (.glb, or .obj + .mtl + texture) and its turntable sheet, all of them or none, and return
    the files written; a file that is the photo or mask of the reconstruction is never replaced. With a part mesh
    the file holds the part-aware car (``ganverse3d.export.part_aware_car``: a material per part, four separate
    wheels, their tyres and rims tinted as the photo shows them where it shows them)."""
    out = check_mesh_output(out, reconstruction.sources)
    model = reconstruction.mesh
    if reconstruction.part_mesh is not None:
        model = part_aware_car(reconstruction.part_mesh)
        model.wheel_colours = reconstruction.wheel_colours([car_wheel.wheel for car_wheel in model.wheels])
    contents = encode_mesh(out, model)
    contents[turntable_path(out)] = png_bytes(turntable_sheet(reconstruction))
    return write_files(contents)


def describe_camera(camera: Camera) -> str:
    """One line with a camera (batch size 1) in degrees and object units."""
    return (f"azimuth {float(camera.azimuth[0]):.1f} deg, elevation {float(camera.elevation[0]):.1f} deg, "
            f"distance {float(camera.distance[0]):.3f}, vertical field of view {float(camera.fov_y[0]):.1f} deg")


# Guards against an extra digit typed by mistake; no preview needs more pixels than this.
MAX_RENDER_RESOLUTION = 4096


def render_mesh_file(mesh_path, camera: Camera, resolution: int, background=(1.0, 1.0, 1.0), lighting: bool = True,
                     fit: bool = False, device="auto"):
    """Render a .glb, .gltf or .obj file with the project's renderer, both sides of every face.

    Args:
        mesh_path: the mesh, read in its own object space (+Y up, front toward +Z).
        camera: a :class:`Camera` of batch size 1.
        resolution: image width and height in pixels, 1 to :data:`MAX_RENDER_RESOLUTION`.
        background: RGB in [0, 1] behind the mesh.
        lighting: a directional light plus ambient, else the bare texture.
        fit: first centre the mesh and scale it into the unit sphere (for meshes made in other units).

    Returns:
        (image [3, R, R], mask [1, R, R]), float32 in [0, 1] on the CPU.
    """
    from .devices import resolve_device
    from .export import load_mesh
    from .render import Lighting, render_mesh

    if not 1 <= resolution <= MAX_RENDER_RESOLUTION:
        raise InputError(f"{setting('resolution')} must be from 1 to {MAX_RENDER_RESOLUTION} pixels, not {resolution}.")
    device = resolve_device(device)
    mesh = load_mesh(mesh_path)
    verts = mesh.verts
    if fit:
        verts = normalise_verts(verts)
    with torch.no_grad():
        result = render_mesh(
            verts[None].to(device), mesh.faces.to(device), mesh.face_uvs.to(device), mesh.texture[None].to(device),
            camera.to(device), resolution, background=torch.tensor(background, device=device),
            lighting=Lighting() if lighting else None,
            soft=False, cull_backfaces=False)  # foreign files do not always wind their faces consistently
    return result.image[0].cpu(), result.mask[0].cpu()


def check_render_outputs(out, mask_out=None) -> list[Path]:
    """The files :func:`write_render` writes: ``out`` and, when given, ``mask_out``, both .png in writable
    folders and not the same file; InputError otherwise, before any work is done."""
    outputs = [check_output_file(path, (".png",)) for path in (out, mask_out) if path is not None]
    if len(outputs) == 2 and outputs[0].resolve() == outputs[1].resolve():
        raise InputError(f"{setting('mask_out')} must differ from the output image.")
    return outputs


def write_render(mesh_path, out, camera: Camera, resolution: int, mask_out=None, **options) -> list[Path]:
    """Render a mesh file (:func:`render_mesh_file`, which ``options`` go to) into the PNG ``out`` and, when
    given, its silhouette (white = mesh) into the PNG ``mask_out``, both or neither; returns the files written.
    The outputs are checked (:func:`check_render_outputs`) before the mesh is read."""
    outputs = check_render_outputs(out, mask_out)
    image, mask = render_mesh_file(mesh_path, camera, resolution, **options)
    return write_files(dict(zip(outputs, (png_bytes(image), png_bytes(mask)))))


# ---------------------------------------------------------------------------------------------------
# Neural rendering (StyleGAN-R, paper Sec. 3.3 and 4.3)

# What api.swap exchanges between two reconstructions.
SWAP_PARTS = ("shape", "texture", "background")
_NEURAL_CACHE: dict[tuple, object] = {}


def load_neural_model(neural_model=None, device="auto"):
    """The StyleGAN-R bundle (a path or a shipped model's name, see :func:`ganverse3d.assets.resolve`), cached
    per file and device."""
    from .assets import resolve
    from .bundle import load_module
    from .devices import resolve_device
    from .neural import StyleGANR

    path, device = resolve("neural", neural_model), resolve_device(device)
    key = (str(path.resolve()), path.stat().st_mtime_ns, str(device))
    if key not in _NEURAL_CACHE:
        _NEURAL_CACHE.clear()
        _NEURAL_CACHE[key] = load_module(path, StyleGANR, device=device).requires_grad_(False)
    return _NEURAL_CACHE[key]


def neural_teacher(neural_model=None) -> str:
    """The inverse-graphics model a StyleGAN-R bundle was trained with, as its training config names it (a
    shipped name or a path): reconstructions it renders should come from that model."""
    from .assets import resolve
    from .bundle import read_metadata

    return str(read_metadata(resolve("neural", neural_model))["config"].get("inverse", "default"))


def _background_photo(image, height: int, width: int) -> torch.Tensor:
    """A background photo (path, PIL image or [3, H, W] tensor in [0, 1]; any size: it is resampled) as
    [3, height, width]: its largest centred crop of that shape's aspect."""
    if isinstance(image, torch.Tensor):
        pixels = image.float().clamp(0, 1)
    else:
        if isinstance(image, (str, os.PathLike)):
            image = _open_image(image, "background")
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
    if pixels.ndim != 3 or pixels.shape[0] != 3:
        raise InputError(f"{setting('background')} must be an RGB image, not one of shape {tuple(pixels.shape)}.")
    rows, columns = pixels.shape[1:]
    if rows * width >= columns * height:  # taller than wanted: full width
        crop_rows, crop_columns = max(1, round(columns * height / width)), columns
    else:
        crop_rows, crop_columns = rows, max(1, round(rows * width / height))
    top, left = (rows - crop_rows) // 2, (columns - crop_columns) // 2
    crop = pixels[:, top:top + crop_rows, left:left + crop_columns]
    return torch.nn.functional.interpolate(crop[None], size=(height, width), mode="bilinear", align_corners=False,
                                           antialias=True)[0]


@dataclass
class NeuralScene:
    """A reconstruction's shape, texture and background encoded by StyleGAN-R: render it from any camera.

    ``content`` [1, num_ws - view_layers, w_dim] is the content part of W*; only the view part depends on the
    camera, so a preview re-renders a scene without encoding it again.
    """

    model: object
    content: torch.Tensor

    @torch.no_grad()
    def render(self, camera: Camera) -> torch.Tensor:
        """[3, R, R] float32 in [0, 1] on the CPU: the scene from ``camera`` (a :class:`Camera` of batch size 1;
        degrees and object units, any field of view), R the generator's resolution."""
        model = self.model
        device = self.content.device
        vector = model.camera_vector(camera.azimuth.to(device), camera.elevation.to(device),
                                     camera.distance.to(device), camera.fov_y.to(device))
        ws = torch.cat((model.mapping.view_codes(vector), self.content), dim=1)
        return model.synthesize(ws)[0].clamp(0, 1).cpu()


@torch.no_grad()
def neural_scene(reconstruction: Reconstruction, background=None, neural_model=None, device="auto") -> NeuralScene:
    """Encode ``reconstruction`` for StyleGAN-R (:class:`NeuralScene`).

    Args:
        reconstruction: from :func:`reconstruct` (ideally with the model the StyleGAN-R was trained with,
            :func:`neural_teacher`).
        background: None for the reconstruction's own (its framed photo with the car masked out), or a photo
            (path, PIL image or [3, H, W] tensor in [0, 1]) whose centred crop becomes the background. Either is
            placed where the generator draws its content (:meth:`StyleGANR.to_canvas`: the whole canvas, or the
            512 x 384 box of the car model's 512-px canvas).
        neural_model: a StyleGAN-R bundle or shipped name (None: the default).
    """
    model = load_neural_model(neural_model, device)
    device = next(model.parameters()).device
    size, mapping = model.resolution, model.mapping
    verts = reconstruction.mesh.verts
    texture = reconstruction.network_texture
    texture_shape = (mapping.texture_height, 2 * mapping.texture_height)
    if verts.shape != (mapping.num_verts, 3) or texture.shape[1:] != texture_shape:
        raise InputError(f"The reconstruction has {verts.shape[0]} vertices and a {tuple(texture.shape[1:])} texture; "
                         f"this StyleGAN-R reads {mapping.num_verts} and ({mapping.texture_height}, "
                         f"{2 * mapping.texture_height}): reconstruct with the model it was trained with "
                         f"({neural_teacher(neural_model)}).")

    if background is None:
        mask = (model.to_canvas(reconstruction.mask[None].float())[0] > 0.5).float()
        pixels = model.to_canvas(reconstruction.background[None].float())[0] * (1 - mask)
    else:
        top, bottom, left, right = model.generator.img_crop
        pixels = model.to_canvas(_background_photo(background, bottom - top, right - left)[None])[0]
        mask = torch.zeros(1, size, size)
    codes = mapping.property_codes(verts[None].to(device), texture[None].to(device), pixels[None].to(device),
                                   mask[None].to(device))
    return NeuralScene(model=model, content=mapping.mix(*codes))


def neural_render(reconstruction: Reconstruction, camera: Camera, background=None, neural_model=None,
                  device="auto") -> torch.Tensor:
    """StyleGAN-R's image [3, R, R] (float32 in [0, 1], CPU) of a reconstructed car from ``camera`` (a
    :class:`Camera` of batch size 1), on its own background or ``background`` (:func:`neural_scene`)."""
    return neural_scene(reconstruction, background, neural_model, device).render(camera)


def swap(a: Reconstruction, b: Reconstruction, parts=SWAP_PARTS) -> Reconstruction:
    """``a`` with ``parts`` (of :data:`SWAP_PARTS`) taken from ``b`` (paper Fig. 10): its camera stays.

    "shape" takes b's vertices (the faces are shared), "texture" b's textures (network texture, and the mesh's
    texture with its UVs), "background" b's background and mask. The result has no ``part_mesh`` (the part labels
    belong to one car's shape and texture).
    """
    parts = tuple(parts)
    unknown = [part for part in parts if part not in SWAP_PARTS]
    if unknown or not parts:
        raise InputError(f"{setting('parts')} must be some of {', '.join(SWAP_PARTS)}, not "
                         f"{', '.join(unknown) or 'none'}.")
    mesh = a.mesh
    if "shape" in parts:
        mesh = TexturedMesh(b.mesh.verts, mesh.faces, mesh.face_uvs, mesh.texture)
    network_texture = a.network_texture
    if "texture" in parts:
        mesh = TexturedMesh(mesh.verts, mesh.faces, b.mesh.face_uvs, b.mesh.texture)
        network_texture = b.network_texture
    background, mask = (b.background, b.mask) if "background" in parts else (a.background, a.mask)
    return Reconstruction(mesh=mesh, camera=a.camera, background=background, mask=mask, image=a.image, crop=a.crop,
                          network_texture=network_texture, sources=dict(a.sources))
