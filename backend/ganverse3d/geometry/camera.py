"""Cameras: look-at orbit cameras, perspective projection, and exact Blender conversions.

Conventions (docs/ARCHITECTURE.md):

* Object space is right-handed, +Y up, the car's front faces +Z (glTF).
* ``Camera(azimuth_deg, elevation_deg, distance, fov_y_deg)`` looks at the origin with +Y up from
  ``distance * (cos el * sin az, sin el, cos el * cos az)``: azimuth 0 sees the front, 90 the +X side.
* Camera space is OpenGL's: +X right, +Y up, the camera looks down -Z.
* Normalised device coordinates (NDC): x in [-1, 1] left to right across the image width, y in [-1, 1]
  bottom to top across the height; the centre of pixel (column i, row j) of a W x H image is
  ``((2i + 1 - W) / W, (H - 2j - 1) / H)`` (DIB-R's convention). Row 0 is the top of the image.
* Blender is Z up; object space maps to Blender as glTF does: (x, y, z) -> (x, -z, y).

Angles are degrees at every public boundary and radians only inside. This module is pure math on
tensors and floats; it never imports bpy, so the Blender add-on can use the same formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError, setting

# Object space (Y up) -> Blender world (Z up), as glTF importers do: (x, y, z) -> (x, -z, y).
OBJECT_TO_BLENDER = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))

# Elevations are clamped this far short of the poles, where look-at with +Y up is undefined.
_MAX_ABS_ELEVATION_DEG = 89.9


def _as_tensor(value, dtype=None, device=None) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=dtype if dtype is not None else torch.get_default_dtype(), device=device)
    return tensor.reshape(-1)


@dataclass(frozen=True)
class Camera:
    """A batch of orbit cameras looking at the origin with +Y up.

    Attributes:
        azimuth: [B] degrees, any value (0 = front, 90 = +X side; wraps every 360).
        elevation: [B] degrees in (-90, 90); the paper's car data spans 0-30.
        distance: [B] distance from the origin, > 0, in object units (the car fits the unit sphere,
            so 2-4 is typical).
        fov_y: [B] vertical field of view in degrees, in (0, 180); 30-50 is typical.

    All four share dtype and device. Build one with ``Camera.create`` (broadcasts scalars).
    """

    azimuth: torch.Tensor
    elevation: torch.Tensor
    distance: torch.Tensor
    fov_y: torch.Tensor

    def __post_init__(self):
        shapes = {tuple(t.shape) for t in (self.azimuth, self.elevation, self.distance, self.fov_y)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"Camera fields must all have shape [B]; got {sorted(shapes)}.")

    @staticmethod
    def create(azimuth, elevation=0.0, distance=2.5, fov_y=40.0, *, dtype=None, device=None) -> "Camera":
        """Broadcast scalars / sequences / tensors of degrees and distances to a batch of cameras."""
        fields = [_as_tensor(v, dtype, device) for v in (azimuth, elevation, distance, fov_y)]
        batch = max(f.numel() for f in fields)
        fields = [f.expand(batch).clone() if f.numel() == 1 else f for f in fields]
        return Camera(*fields)

    def __len__(self) -> int:
        return self.azimuth.shape[0]

    def __getitem__(self, index) -> "Camera":
        pick = (lambda t: t[index].reshape(-1))
        return Camera(pick(self.azimuth), pick(self.elevation), pick(self.distance), pick(self.fov_y))

    def to(self, device=None, dtype=None) -> "Camera":
        move = (lambda t: t.to(device=device, dtype=dtype))
        return Camera(move(self.azimuth), move(self.elevation), move(self.distance), move(self.fov_y))

    @property
    def batch_size(self) -> int:
        return len(self)

    def position(self) -> torch.Tensor:
        """Camera centres in object space, [B, 3]."""
        az = torch.deg2rad(self.azimuth)
        el = torch.deg2rad(self.elevation.clamp(-_MAX_ABS_ELEVATION_DEG, _MAX_ABS_ELEVATION_DEG))
        return self.distance[:, None] * torch.stack(
            (torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)), dim=-1)

    def rotation(self) -> torch.Tensor:
        """World-to-camera rotation, [B, 3, 3]; its rows are the camera's right, up and backward axes."""
        az = torch.deg2rad(self.azimuth)
        el = torch.deg2rad(self.elevation.clamp(-_MAX_ABS_ELEVATION_DEG, _MAX_ABS_ELEVATION_DEG))
        zero = torch.zeros_like(az)
        # Closed forms of look-at(origin, up=+Y): backward = position / distance, right = up x backward.
        backward = torch.stack((torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)), -1)
        right = torch.stack((torch.cos(az), zero, -torch.sin(az)), -1)
        up = torch.cross(backward, right, dim=-1)
        return torch.stack((right, up, backward), dim=-2)

    def view_matrix(self) -> torch.Tensor:
        """World-to-camera 4x4 matrices, [B, 4, 4] (OpenGL camera space, looking down -Z)."""
        rotation = self.rotation()
        translation = -(rotation @ self.position()[..., None])[..., 0]
        view = torch.zeros(len(self), 4, 4, dtype=rotation.dtype, device=rotation.device)
        view[:, :3, :3] = rotation
        view[:, :3, 3] = translation
        view[:, 3, 3] = 1.0
        return view

    def focal_ndc(self, aspect: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Focal lengths in NDC units along x and y, each [B], for an image of width/height ``aspect``."""
        fy = 1.0 / torch.tan(torch.deg2rad(self.fov_y) / 2)
        return fy / aspect, fy

    def transform(self, points: torch.Tensor, aspect: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Project object-space points.

        Args:
            points: [B, N, 3] (or [N, 3], shared by the batch) object-space positions.
            aspect: image width / height.

        Returns:
            ndc_xy: [B, N, 2] normalised device coordinates (see module docstring).
            depth: [B, N] distance in front of the camera along its view axis (> 0 when visible).
        """
        if points.dim() == 2:
            points = points.expand(len(self), *points.shape)
        assert points.dim() == 3 and points.shape[0] == len(self) and points.shape[-1] == 3, points.shape
        rotation = self.rotation().to(points.dtype)
        camera_points = (points - self.position().to(points.dtype)[:, None]) @ rotation.transpose(1, 2)
        depth = -camera_points[..., 2]
        fx, fy = self.focal_ndc(aspect)
        safe_depth = depth.clamp_min(1e-8)
        ndc = torch.stack((camera_points[..., 0] * fx.to(points.dtype)[:, None] / safe_depth,
                           camera_points[..., 1] * fy.to(points.dtype)[:, None] / safe_depth), dim=-1)
        return ndc, depth

    def project_to_pixels(self, points: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Object-space points [B, N, 3] -> pixel coordinates [B, N, 2] as (column, row), with (0, 0) the
        top-left corner of the top-left pixel (its centre is at (0.5, 0.5)). ``image_size`` is (H, W)."""
        height, width = image_size
        ndc, _ = self.transform(points, aspect=width / height)
        return torch.stack(((ndc[..., 0] + 1) * width / 2, (1 - ndc[..., 1]) * height / 2), dim=-1)


# ---------------------------------------------------------------------------------------------------
# Blender conversions (pure math: floats and tuples, no bpy)
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlenderCamera:
    """The Blender camera settings that fix a view, in Blender's Z-up world.

    Attributes:
        location: (X, Y, Z) of the camera object, metres (Blender units).
        rotation_euler: (rx, ry, rz) radians, rotation_mode 'XYZ' (Blender's default): R = Rz @ Ry @ Rx.
        lens: focal length in millimetres.
        sensor_width, sensor_height: millimetres.
        sensor_fit: 'AUTO', 'HORIZONTAL' or 'VERTICAL', as ``bpy.types.Camera.sensor_fit``.
        resolution: (width, height) in pixels (render resolution x percentage); pixel aspect 1.
    """

    location: tuple[float, float, float]
    rotation_euler: tuple[float, float, float]
    lens: float
    sensor_width: float
    sensor_height: float
    sensor_fit: str
    resolution: tuple[int, int]


AZIMUTH_BIN_DEG = 30.0


def check_camera_values(azimuth: float, elevation: float, distance: float, fov_y: float) -> None:
    """InputError in one sentence unless the four numbers make a :class:`Camera` (degrees, object units)."""
    if not all(math.isfinite(value) for value in (azimuth, elevation, distance, fov_y)):
        raise InputError(f"{setting('azimuth')}, {setting('elevation')}, {setting('distance')} and {setting('fov')} "
                         "must be finite numbers.")
    if distance <= 0:
        raise InputError(f"{setting('distance')} must be greater than 0, not {distance:g}.")
    if not 0 < fov_y < 180:
        raise InputError(f"{setting('fov')} must lie between 0 and 180 degrees, not {fov_y:g}.")
    if not -90 <= elevation <= 90:
        raise InputError(f"{setting('elevation')} must lie between -90 and 90 degrees, not {elevation:g}.")


def azimuth_bins(azimuth_deg) -> torch.Tensor:
    """Azimuths (degrees; a tensor [B] or a float) -> their 30-degree bin, int64 in 0..11 on the CPU: bin b
    holds [b * 30 - 15, b * 30 + 15), so bin 0 is the front, 3 the +X side, 6 the rear (the annotation's bins)."""
    shifted = torch.remainder(_as_tensor(azimuth_deg, torch.float64).detach().cpu() + AZIMUTH_BIN_DEG / 2, 360.0)
    return torch.div(shifted, AZIMUTH_BIN_DEG, rounding_mode="floor").long()


def object_to_blender(point) -> tuple[float, float, float]:
    """An object-space (Y-up) point -> Blender (Z-up) coordinates: (x, y, z) -> (x, -z, y)."""
    x, y, z = (float(c) for c in point)
    return (x, -z, y)


def blender_to_object(point) -> tuple[float, float, float]:
    """Inverse of :func:`object_to_blender`: (X, Y, Z) -> (X, Z, -Y)."""
    x, y, z = (float(c) for c in point)
    return (x, z, -y)


def euler_xyz_to_matrix(rotation_euler) -> list[list[float]]:
    """Blender's 'XYZ' Euler angles (radians) -> 3x3 rotation matrix R = Rz @ Ry @ Rx (row-major lists)."""
    rx, ry, rz = rotation_euler
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    return [
        [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
        [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
        [-sy, cy * sx, cy * cx],
    ]


def matrix_to_euler_xyz(matrix) -> tuple[float, float, float]:
    """Inverse of :func:`euler_xyz_to_matrix` (returns ry in [-pi/2, pi/2])."""
    m = matrix
    ry = math.asin(max(-1.0, min(1.0, -m[2][0])))
    if abs(m[2][0]) < 1 - 1e-9:
        rx = math.atan2(m[2][1], m[2][2])
        rz = math.atan2(m[1][0], m[0][0])
    else:  # gimbal lock: rx and rz share one degree of freedom; put it all in rx
        rz = 0.0
        rx = math.atan2(-m[1][2], m[1][1])
    return (rx, ry, rz)


def blender_fov_y_deg(lens: float, sensor_width: float, sensor_height: float, sensor_fit: str,
                      resolution: tuple[int, int]) -> float:
    """Vertical field of view (degrees) of a Blender camera rendering at ``resolution`` = (width, height).

    Blender fits the sensor to one image axis: 'HORIZONTAL' fits ``sensor_width`` to the width,
    'VERTICAL' fits ``sensor_height`` to the height, and 'AUTO' fits ``sensor_width`` to the larger axis.
    """
    width, height = resolution
    if sensor_fit == "AUTO":
        sensor_fit, sensor_height = ("HORIZONTAL", sensor_height) if width >= height else ("VERTICAL", sensor_width)
    if sensor_fit == "HORIZONTAL":
        half_tan_x = sensor_width / (2 * lens)
        return math.degrees(2 * math.atan(half_tan_x * height / width))
    if sensor_fit == "VERTICAL":
        return math.degrees(2 * math.atan(sensor_height / (2 * lens)))
    raise ValueError(f"sensor_fit must be 'AUTO', 'HORIZONTAL' or 'VERTICAL', not {sensor_fit!r}.")


def camera_to_blender(azimuth_deg: float, elevation_deg: float, distance: float, fov_y_deg: float,
                      resolution: tuple[int, int] = (256, 256), scale: float = 1.0,
                      sensor_width: float = 36.0) -> BlenderCamera:
    """One of our cameras -> Blender camera settings that render the same image.

    Args:
        azimuth_deg, elevation_deg, distance, fov_y_deg: as :class:`Camera` (one camera).
        resolution: (width, height) of the render in pixels.
        scale: metres per object-space unit (an object imported at that scale keeps the same image).
        sensor_width: sensor size in mm; the sensor is fitted vertically so ``fov_y`` maps exactly.
    """
    camera = Camera.create(azimuth_deg, elevation_deg, distance, fov_y_deg, dtype=torch.float64)
    position = object_to_blender(camera.position()[0].tolist())
    # Columns of the Blender camera's world matrix are its local axes (right, up, backward) in Blender space.
    axes = [object_to_blender(row) for row in camera.rotation()[0].tolist()]
    matrix = [[axes[col][row] for col in range(3)] for row in range(3)]
    sensor_height = sensor_width
    lens = sensor_height / (2 * math.tan(math.radians(fov_y_deg) / 2))
    return BlenderCamera(
        location=tuple(scale * c for c in position),
        rotation_euler=matrix_to_euler_xyz(matrix),
        lens=lens,
        sensor_width=sensor_width,
        sensor_height=sensor_height,
        sensor_fit="VERTICAL",
        resolution=(int(resolution[0]), int(resolution[1])),
    )


def camera_from_blender(blender_camera: BlenderCamera, scale: float = 1.0) -> tuple[Camera, float]:
    """Blender camera settings -> (our Camera of batch size 1 in float64, off-axis angle in degrees).

    Our cameras always look at the origin with no roll; the second value is the angle between the Blender
    camera's view axis and the direction to the origin (0 for a camera made by :func:`camera_to_blender`),
    so a caller can warn when a free-flying Blender camera is approximated.
    ``scale`` is metres per object-space unit, as in :func:`camera_to_blender`.
    """
    position = blender_to_object([c / scale for c in blender_camera.location])
    x, y, z = position
    distance = math.sqrt(x * x + y * y + z * z)
    if distance <= 0:
        raise ValueError("The Blender camera sits at the origin; it must look at the car from outside.")
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, y / distance))))
    azimuth = math.degrees(math.atan2(x, z))
    matrix = euler_xyz_to_matrix(blender_camera.rotation_euler)
    backward_blender = [matrix[row][2] for row in range(3)]
    backward = blender_to_object(backward_blender)
    cos_off = sum(b * p / distance for b, p in zip(backward, position))
    off_axis_deg = math.degrees(math.acos(max(-1.0, min(1.0, cos_off))))
    fov_y = blender_fov_y_deg(blender_camera.lens, blender_camera.sensor_width, blender_camera.sensor_height,
                              blender_camera.sensor_fit, blender_camera.resolution)
    return Camera.create(azimuth, elevation, distance, fov_y, dtype=torch.float64), off_axis_deg
