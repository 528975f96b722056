"""The facade the CLI and the Blender worker call.

:func:`reconstruct` turns one photo of a car into a textured mesh (paper Sec. 4.1, user side):

1. read the photo: any format Pillow reads, EXIF orientation applied, grayscale / 16-bit / palette images
   converted to 8-bit RGB; an alpha channel that is not fully opaque is the car's mask;
2. find the car: the given mask, the alpha, or a segmenter (``ganverse3d.dataset.segment``); exactly one
   car must be found (components smaller than :data:`MIN_CAR_AREA` of the image are ignored);
3. frame it as the training data frames its cars: a square crop around the car whose size and offset
   match the median of the training masks (recorded in the model bundle); first with the overall median,
   then again with the median of the azimuth bin the first prediction falls in (a front view fills less of
   the frame than a side view);
4. predict mesh, UV texture and camera with the inverse-graphics network;
5. refine the camera's azimuth by the car's silhouette: of the estimate turned by up to 10 degrees either way,
   keep the one under which the predicted mesh's silhouette best matches the mask (``ganverse3d.inverse.camera_search``).

Photos are never written by this module; :func:`write_reconstruction` writes the mesh and its turntable sheet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError, setting
from .export import TexturedMesh, save_mesh
from .files import check_output_file, image_grid, save_png
from .geometry import Camera, azimuth_bins
from .render.turntable import render_turntable, turntable_rows

# Larger photos are refused before decoding: 50 megapixels covers every common camera.
MAX_PIXELS = 50_000_000
# Mask components smaller than this fraction of the photo are specks, not cars (the segmenters' rule).
MIN_CAR_AREA = 0.01
# Side of the framed crop returned as the image / background / mask of a reconstruction.
FRAMED_SIZE = 256
# Masks are searched for separate cars at this size (plenty to tell cars apart, cheap for big photos).
_COMPONENT_SEARCH_SIZE = 512


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
    """

    mesh: TexturedMesh
    camera: Camera
    background: torch.Tensor
    mask: torch.Tensor
    image: torch.Tensor
    crop: tuple[float, float, float]


# ---------------------------------------------------------------------------------------------------
# Reading photos and masks


def _to_rgb_and_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded Pillow image -> (uint8 [H, W, 3], alpha uint8 [H, W] or None when fully opaque/absent)."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale (PNG/TIFF open as I;16 or I): scale the full 16-bit range to 8 bits.
        grey = np.asarray(image, dtype=np.float64) / 65535.0
        return np.repeat((np.clip(grey, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2), None
    if image.mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        grey = grey / 255.0 if grey.max(initial=0) > 1 else grey
        return np.repeat((np.clip(grey, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2), None
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"))
        alpha = rgba[..., 3]
        return np.ascontiguousarray(rgba[..., :3]), (alpha if int(alpha.min()) < 255 else None)
    return np.asarray(image.convert("RGB")), None


def _open_image(path, what: str) -> Image.Image:
    """Open and fully decode an image file, EXIF orientation applied; InputError for anything unusable."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The {what} {path} does not exist.")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise InputError(f"The {what} {path} has {image.width} x {image.height} pixels, more than the "
                                 f"{MAX_PIXELS // 1_000_000} megapixels this command accepts; scale it down first.")
            oriented = ImageOps.exif_transpose(image)
            oriented.load()
            return oriented
    except InputError:  # a ValueError too: keep it from the damaged-file branch below
        raise
    except UnidentifiedImageError:
        raise InputError(f"The {what} {path} is not an image file this program can read.") from None
    except Image.DecompressionBombError:
        raise InputError(f"The {what} {path} is too large to decode safely; scale it down first.") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise InputError(f"The {what} {path} is damaged or truncated.") from None


def read_photo(image) -> tuple[np.ndarray, np.ndarray | None]:
    """A photo (path, PIL image, uint8 array [H, W, 3|4], or float tensor [3|4, H, W] in [0, 1]) ->
    (uint8 RGB [H, W, 3], alpha uint8 [H, W] or None)."""
    if isinstance(image, (str, os.PathLike)):
        image = _open_image(image, "photo")
    if isinstance(image, Image.Image):
        if image.width * image.height > MAX_PIXELS:
            raise InputError(f"The photo has more than {MAX_PIXELS // 1_000_000} megapixels; scale it down first.")
        return _to_rgb_and_alpha(image)
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] not in (3, 4):
            raise InputError(f"A photo tensor must have shape [3, H, W] or [4, H, W], not {list(image.shape)}.")
        image = (image.detach().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise InputError("A photo array must be uint8 with shape [H, W, 3] or [H, W, 4].")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise InputError(f"The photo has more than {MAX_PIXELS // 1_000_000} megapixels; scale it down first.")
    alpha = array[..., 3] if array.shape[2] == 4 and int(array[..., 3].min()) < 255 else None
    return np.ascontiguousarray(array[..., :3]), alpha


def read_mask(mask, size: tuple[int, int]) -> np.ndarray:
    """A mask (path, PIL image, array [H, W] or tensor [1, H, W] / [H, W]; white or > 0.5 = car) -> bool
    [H, W]; it must match the photo's ``size`` (H, W) after EXIF orientation."""
    if isinstance(mask, (str, os.PathLike)):
        mask = _open_image(mask, "mask")
    if isinstance(mask, Image.Image):
        rgb, alpha = _to_rgb_and_alpha(mask)
        array = (alpha if alpha is not None else rgb.mean(axis=2)) > 127
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


def single_car(mask: np.ndarray, source: str) -> np.ndarray:
    """The one car of a bool mask [H, W] (specks below MIN_CAR_AREA dropped); InputError for none or several."""
    from .dataset.segment import instances_from_probability

    height, width = mask.shape
    scale = min(1.0, _COMPONENT_SEARCH_SIZE / max(height, width))
    small = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.BOX)) > 127
    instances = instances_from_probability(torch.from_numpy(small).float(), 0.5, MIN_CAR_AREA)
    if len(instances) == 0:
        raise InputError(f"No car found: {source} marks nothing of at least {MIN_CAR_AREA:.0%} of the photo.")
    if len(instances) > 1:
        raise InputError(f"{source[0].upper() + source[1:]} shows {len(instances)} separate cars; give a photo "
                         f"or mask with exactly one.")
    keep = np.asarray(Image.fromarray(instances.masks[0].numpy().astype(np.uint8) * 255).resize((width, height),
                                                                                              Image.NEAREST)) > 127
    return mask & keep


_SEGMENTER_CACHE: dict[tuple, object] = {}


def segment_photo(rgb: np.ndarray, segmenter: str, device) -> np.ndarray:
    """The one car of a photo [H, W, 3] uint8 found by a segmenter spec (see ``ganverse3d.dataset.segment``);
    the segmenter is loaded once per spec and device (the worker reconstructs many photos)."""
    from .dataset.segment import load_segmenter

    key = (segmenter, str(device))
    if key not in _SEGMENTER_CACHE:
        _SEGMENTER_CACHE.clear()
        _SEGMENTER_CACHE[key] = load_segmenter(segmenter, device=device)
    model = _SEGMENTER_CACHE[key]
    instances = model.segment(torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255)[0]
    if len(instances) == 0:
        raise InputError("No car found in the photo; if there is one, give its mask (a mask file or the photo's alpha).")
    if len(instances) > 1:
        raise InputError(f"The photo shows {len(instances)} cars; crop it to one car or give the mask of one.")
    return instances.masks[0].numpy()


# ---------------------------------------------------------------------------------------------------
# Framing


def crop_box(mask: np.ndarray, fill: float, centre) -> tuple[float, float, float]:
    """The square (left, top, size) in which the mask's bounding box has longer side ``fill`` * size and
    centre offset ``centre`` (x, y, in crop sides, y down) from the crop centre, as training images do."""
    rows, columns = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    size = max(bottom - top, right - left) / fill
    centre_x = (left + right) / 2 - centre[0] * size
    centre_y = (top + bottom) / 2 - centre[1] * size
    return float(centre_x - size / 2), float(centre_y - size / 2), float(size)


def crop_resize(array: np.ndarray, box: tuple[float, float, float], out_size: int, edge: bool) -> np.ndarray:
    """Crop the square ``box`` = (left, top, size) of a uint8 [H, W] or [H, W, C] array and resample it to
    out_size² (area average when shrinking, bicubic when enlarging). Outside the array the edge pixels are
    repeated (``edge``) or zeros are used."""
    left, top, size = box
    height, width = array.shape[:2]
    x0, y0 = int(np.floor(left)), int(np.floor(top))
    x1, y1 = int(np.ceil(left + size)), int(np.ceil(top + size))
    window = array[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]
    if window.size == 0:
        raise InputError("The car lies outside the photo.")
    pad = [(max(0, -y0), max(0, y1 - height)), (max(0, -x0), max(0, x1 - width))] + [(0, 0)] * (array.ndim - 2)
    padded = np.pad(window, pad, mode="edge" if edge else "constant")
    resample = Image.BOX if size >= out_size else Image.BICUBIC
    resized = Image.fromarray(padded).resize((out_size, out_size), resample,
                                             box=(left - x0, top - y0, left - x0 + size, top - y0 + size))
    return np.asarray(resized)


def _framed(rgb: np.ndarray, mask: np.ndarray, box, size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.from_numpy(crop_resize(rgb, box, size, edge=True).copy()).permute(2, 0, 1).float() / 255
    car = torch.from_numpy(crop_resize(mask.astype(np.uint8) * 255, box, size, edge=False).copy()).float()[None] / 255
    return image.to(device), car.to(device)


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


# ---------------------------------------------------------------------------------------------------
# The facade


@torch.no_grad()
def reconstruct(image, mask=None, model=None, segmenter: str = "world", device="auto") -> Reconstruction:
    """One photo of one car -> :class:`Reconstruction` (see the module docstring for the steps).

    Args:
        image: a path, a PIL image, a uint8 array [H, W, 3|4] or a float tensor [3|4, H, W] in [0, 1].
        mask: the car's mask in the same forms ([H, W] / [1, H, W]; white / > 0.5 = car), or None to use the
            photo's alpha channel or else the segmenter.
        model: path of an inverse-graphics bundle, or the name of an embedded one ("oracle", the default, or
            "gan", trained the paper's way); None = the default.
        segmenter: segmenter spec for photos without mask or alpha (``world``, ``maskrcnn:PATH``, ...).
        device: "auto", "cpu" or "cuda".

    Raises:
        InputError: unreadable / damaged / oversized photo or mask, no car or several cars, no model.
    """
    from .devices import resolve_device
    from .inverse.camera_search import search_camera

    rgb, alpha = read_photo(image)
    size = rgb.shape[:2]
    if mask is not None:
        car = single_car(read_mask(mask, size), "the mask")
    elif alpha is not None:
        car = single_car(alpha > 127, "the photo's alpha channel")
    else:
        car = None
    net, framing = load_inverse_model(model, device)
    device = resolve_device(device)
    if car is None:
        car = segment_photo(rgb, segmenter, device)

    resolution = net.resolution
    box = crop_box(car, framing["fill"], framing["centre"])
    net_image, net_mask = (t[None] for t in _framed(rgb, car, box, resolution, device))
    prediction = net(net_image, net_mask)
    view_bin = int(azimuth_bins(float(prediction.camera.azimuth[0])))
    if framing["bin_fill"][view_bin] is not None:
        box = crop_box(car, framing["bin_fill"][view_bin], framing["bin_centre"][view_bin])
        net_image, net_mask = (t[None] for t in _framed(rgb, car, box, resolution, device))
        prediction = net(net_image, net_mask)

    image_crop, mask_crop = _framed(rgb, car, box, FRAMED_SIZE, "cpu")
    mesh = prediction.mesh(0, net.faces.cpu(), net.face_uvs.cpu())
    camera = search_camera(prediction, net.faces, net.face_uvs, net_mask)[0].to(device="cpu")
    return Reconstruction(mesh=mesh, camera=camera, background=image_crop * (mask_crop <= 0.5), mask=mask_crop,
                          image=image_crop, crop=box)


def turntable_sheet(reconstruction: Reconstruction, size: int = 128) -> torch.Tensor:
    """[3, H, W] sheet: the framed photo, then the mesh from 6 azimuths (lit, on grey)."""
    mesh = reconstruction.mesh
    with torch.no_grad():
        views, _ = render_turntable(mesh.verts, mesh.faces, mesh.face_uvs, mesh.texture, size=size)
    tiles = turntable_rows(reconstruction.image, views)
    return image_grid(tiles, columns=len(tiles))


def turntable_path(out) -> Path:
    """Where the turntable sheet of a mesh written to ``out`` goes: ``NAME_turntable.png`` beside it."""
    out = Path(out)
    return out.with_name(out.stem + "_turntable.png")


def check_mesh_output(out) -> Path:
    """InputError unless ``out`` is a writable .glb / .obj path (checked before any work is done)."""
    return check_output_file(out, (".glb", ".obj"))


def write_reconstruction(reconstruction: Reconstruction, out) -> list[Path]:
    """Write the mesh (.glb, or .obj + .mtl + texture) and its turntable sheet; returns the files written."""
    out = check_mesh_output(out)
    sheet = turntable_sheet(reconstruction)
    written = save_mesh(out, reconstruction.mesh)
    save_png(turntable_path(out), sheet)
    return written + [turntable_path(out)]


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
        centre = (verts.min(dim=0).values + verts.max(dim=0).values) / 2
        verts = (verts - centre) / (verts - centre).norm(dim=1).max().clamp_min(1e-12)
    with torch.no_grad():
        result = render_mesh(
            verts[None].to(device), mesh.faces.to(device), mesh.face_uvs.to(device), mesh.texture[None].to(device),
            camera.to(device), resolution, background=torch.tensor(background, device=device),
            lighting=Lighting() if lighting else None,
            soft=False, cull_backfaces=False)  # foreign files do not always wind their faces consistently
    return result.image[0].cpu(), result.mask[0].cpu()
