"""bpy helpers for the Blender convention tests: cameras from/to :class:`BlenderCamera`, meshes in object space,
Cycles silhouettes, and the non-symmetric test shape that makes an axis or handedness error visible.

bpy (Blender 5.0 as a module) is a declared test dependency (``pip install -e .[test]``), so it is imported
unconditionally: a missing bpy fails these tests instead of silently skipping them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import bpy
import numpy as np
import torch
from PIL import Image

from ganverse3d.geometry import (BlenderCamera, Camera, camera_from_blender, camera_to_blender, object_to_blender,
                                template_sphere)
from ganverse3d.render import render_mesh


def reset_blender() -> bpy.types.Scene:
    """An empty factory-settings scene (no objects, no world), render resolution percentage 100."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = 1.0
    scene.render.pixel_aspect_y = 1.0
    return scene


def add_camera(scene: bpy.types.Scene, settings: BlenderCamera) -> bpy.types.Object:
    """A camera object set up exactly as ``settings`` says, made the scene's active camera."""
    data = bpy.data.cameras.new("camera")
    data.type = "PERSP"
    data.lens_unit = "MILLIMETERS"
    data.lens = settings.lens
    data.sensor_width = settings.sensor_width
    data.sensor_height = settings.sensor_height
    data.sensor_fit = settings.sensor_fit
    data.shift_x = data.shift_y = 0.0
    data.clip_start, data.clip_end = 0.01, 1000.0
    camera = bpy.data.objects.new("camera", data)
    camera.location = settings.location
    camera.rotation_mode = "XYZ"
    camera.rotation_euler = settings.rotation_euler
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = settings.resolution
    bpy.context.view_layer.update()  # computes matrix_world
    return camera


def read_camera(scene: bpy.types.Scene, camera: bpy.types.Object, from_matrix_world: bool = False) -> BlenderCamera:
    """A bpy camera object -> :class:`BlenderCamera` (what the add-on reads). With ``from_matrix_world`` the
    location and rotation come from the evaluated ``matrix_world`` instead of the object's own channels."""
    if from_matrix_world:
        location, rotation, _ = camera.matrix_world.decompose()
        euler = rotation.to_euler("XYZ")
    else:
        location, euler = camera.location, camera.rotation_euler
    percentage = scene.render.resolution_percentage / 100
    return BlenderCamera(
        location=tuple(location),
        rotation_euler=(euler.x, euler.y, euler.z),
        lens=camera.data.lens,
        sensor_width=camera.data.sensor_width,
        sensor_height=camera.data.sensor_height,
        sensor_fit=camera.data.sensor_fit,
        resolution=(round(scene.render.resolution_x * percentage), round(scene.render.resolution_y * percentage)),
    )


def add_mesh(scene: bpy.types.Scene, verts_vx3: torch.Tensor, faces_fx3: torch.Tensor,
             object_to_world=object_to_blender) -> bpy.types.Object:
    """A mesh object from object-space (Y-up) vertices, mapped into Blender's Z-up world by ``object_to_world``."""
    mesh = bpy.data.meshes.new("mesh")
    mesh.from_pydata([object_to_world(v) for v in verts_vx3.tolist()], [], faces_fx3.tolist())
    mesh.update()
    obj = bpy.data.objects.new("mesh", mesh)
    scene.collection.objects.link(obj)
    return obj


def render_cycles_alpha(scene: bpy.types.Scene, out_dir: Path, samples: int = 8) -> np.ndarray:
    """Render the scene with Cycles on the CPU and return its alpha channel, float [H, W] in [0, 1], row 0 at
    the top. The pixel filter is made tiny, so every sample lands (almost) on the pixel centre, which is where
    our rasteriser tests coverage (Cycles ignores filter_width for its BOX filter, hence Blackman-Harris);
    film_transparent makes alpha the coverage."""
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = samples
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.max_bounces = 0
    cycles.pixel_filter_type = "BLACKMAN_HARRIS"  # Cycles ignores the width of its BOX filter
    cycles.filter_width = 0.01
    cycles.seed = 0
    scene.render.threads_mode = "FIXED"
    scene.render.threads = 2
    scene.render.film_transparent = True
    scene.render.use_persistent_data = False
    settings = scene.render.image_settings
    settings.file_format = "PNG"
    settings.color_mode = "RGBA"
    settings.color_depth = "8"
    path = Path(out_dir) / "cycles_alpha.png"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    with Image.open(path) as image:
        rgba = np.asarray(image.convert("RGBA"))
    return rgba[..., 3].astype(np.float32) / 255.0


def lumpy_car_mesh() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A car-ish, deliberately non-symmetric closed mesh in object space: (verts [V, 3] float64, faces [F, 3],
    face_uvs [F, 3, 2]).

    The template sphere is stretched into a long, low body (length along Z, the car's axis), then deformed by
    smooth bumps that break every mirror symmetry: a big nose bump at the front-right (+Z, +X), a cabin hump
    toward the back on top (-Z, +Y) and a fin on the +X flank. A mirrored axis, a swapped handedness or a wrong
    azimuth therefore changes the silhouette. Fits in the unit sphere.
    """
    mesh = template_sphere(3)
    unit = mesh.verts.to(torch.float64)

    def bump(centre, width):
        centre = torch.tensor(centre, dtype=torch.float64)
        centre = centre / centre.norm()
        return torch.exp(-((unit - centre) ** 2).sum(-1, keepdim=True) / width ** 2)

    verts = unit * torch.tensor([0.42, 0.30, 0.78], dtype=torch.float64)
    verts = verts + 0.28 * bump((0.6, 0.1, 0.8), 0.45) * unit          # nose, front-right
    verts = verts + torch.tensor([0.0, 0.30, 0.0], dtype=torch.float64) * bump((0.0, 1.0, -0.6), 0.55)  # cabin
    verts = verts + torch.tensor([0.25, 0.05, 0.0], dtype=torch.float64) * bump((1.0, 0.2, -0.3), 0.35)  # +X fin
    assert float(verts.norm(dim=-1).max()) < 1.0
    return verts, mesh.faces, mesh.face_uvs.to(torch.float64)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / max(int((a | b).sum()), 1))


def degrees_between(u, v) -> float:
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    cosine = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


# ---------------------------------------------------------------------------------------------------
# Silhouette comparison cases, shared by test_silhouette_blender.py and make_silhouette_figure.py
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SilhouetteCase:
    """One view of :func:`lumpy_car_mesh`, rendered by Cycles and by our renderer.

    Without ``sensor_fit`` the Blender camera is ``camera_to_blender(azimuth, elevation, distance, fov_y, ...)``
    and ours is ``Camera.create(azimuth, elevation, distance, fov_y)`` (our camera -> Blender). With
    ``sensor_fit`` the Blender camera is placed the same way but gets its own lens / sensor / fit, and ours is
    read back from the bpy camera through ``camera_from_blender`` (Blender camera -> ours).
    """

    name: str
    azimuth: float
    elevation: float
    distance: float
    resolution: tuple[int, int]  # (width, height), Blender's order
    fov_y: float = 40.0
    scale: float = 1.0
    sensor_fit: str | None = None
    lens: float = 35.0
    sensor_width: float = 36.0
    sensor_height: float = 24.0

    def blender_camera(self) -> BlenderCamera:
        placed = camera_to_blender(self.azimuth, self.elevation, self.distance, self.fov_y,
                                   resolution=self.resolution, scale=self.scale)
        if self.sensor_fit is None:
            return placed
        return replace(placed, lens=self.lens, sensor_width=self.sensor_width, sensor_height=self.sensor_height,
                       sensor_fit=self.sensor_fit)


SILHOUETTE_CASES = (
    SilhouetteCase("front_right_above_256x256", azimuth=30, elevation=20, distance=2.6, resolution=(256, 256)),
    SilhouetteCase("rear_left_256x192", azimuth=215, elevation=10, distance=2.8, fov_y=35,
                   resolution=(256, 192)),
    SilhouetteCase("left_above_auto_fit_portrait_192x256", azimuth=-100, elevation=30, distance=3.0,
                   resolution=(192, 256), sensor_fit="AUTO", lens=40.0),
    SilhouetteCase("right_rear_below_horizontal_fit_scale_2", azimuth=120, elevation=-15, distance=2.7,
                   resolution=(256, 256), scale=2.0, sensor_fit="HORIZONTAL", lens=32.0),
)


@dataclass
class SilhouettePair:
    ours: np.ndarray            # [H, W] bool, our render_mesh(...).mask
    blender: np.ndarray         # [H, W] bool, Cycles alpha >= 0.5
    blender_alpha: np.ndarray   # [H, W] float in [0, 1]
    camera: Camera              # our camera for this view (float64, batch 1)
    off_axis_deg: float         # 0 unless the Blender camera does not look at the origin


def our_mask(verts_vx3: torch.Tensor, faces_fx3: torch.Tensor, face_uvs: torch.Tensor, camera: Camera,
             resolution: tuple[int, int]) -> np.ndarray:
    """Our hard silhouette [H, W] (bool) of one mesh; ``resolution`` is Blender's (width, height)."""
    width, height = resolution
    texture = torch.ones(1, 3, 2, 2, dtype=verts_vx3.dtype)
    out = render_mesh(verts_vx3[None], faces_fx3, face_uvs, texture, camera, (height, width), soft=False)
    return out.mask[0, 0].numpy() > 0.5


def render_silhouette_pair(case: SilhouetteCase, out_dir: Path, samples: int = 8) -> SilhouettePair:
    """Render ``lumpy_car_mesh`` from ``case`` with Cycles (in a freshly reset Blender) and with our renderer."""
    verts, faces, face_uvs = lumpy_car_mesh()
    scene = reset_blender()
    camera_object = add_camera(scene, case.blender_camera())
    add_mesh(scene, verts, faces, lambda v: tuple(case.scale * c for c in object_to_blender(v)))
    alpha = render_cycles_alpha(scene, out_dir, samples=samples)
    if case.sensor_fit is None:
        camera, off_axis = Camera.create(case.azimuth, case.elevation, case.distance, case.fov_y,
                                         dtype=torch.float64), 0.0
    else:
        camera, off_axis = camera_from_blender(read_camera(scene, camera_object), scale=case.scale)
    return SilhouettePair(our_mask(verts, faces, face_uvs, camera, case.resolution), alpha >= 0.5, alpha,
                          camera, off_axis)


def comparison_image(ours: np.ndarray, blender: np.ndarray) -> torch.Tensor:
    """[3, 3, H, W] float images: ours (white on black) | Blender | xor (red where they differ, drawn over Blender's
    silhouette in dark grey so that an empty xor still shows where the shape is)."""
    ours_t, blender_t = (torch.from_numpy(m.astype(np.float32)) for m in (ours, blender))
    xor = (ours_t != blender_t).float()
    context = 0.25 * blender_t * (1 - xor)
    xor_rgb = torch.stack((torch.maximum(xor, context), context, context))
    return torch.stack((ours_t.expand(3, -1, -1), blender_t.expand(3, -1, -1), xor_rgb))
