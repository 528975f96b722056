"""Pure geometry: cameras (and their Blender twins) and mesh topology. Imports nothing else of the project but
:mod:`ganverse3d.errors`."""

from .camera import (AZIMUTH_BIN_DEG, BlenderCamera, Camera, azimuth_bins, blender_fov_y_deg, blender_to_object,
                     camera_from_blender, check_camera_values, camera_to_blender, euler_xyz_to_matrix, matrix_to_euler_xyz,
                     object_to_blender)
from .mesh import (TemplateMesh, face_normals, mesh_edges, template_sphere, uniform_laplacian,
                   vertex_normals)

__all__ = [
    "AZIMUTH_BIN_DEG", "BlenderCamera", "Camera", "TemplateMesh", "azimuth_bins", "blender_fov_y_deg",
    "blender_to_object", "camera_from_blender", "camera_to_blender", "check_camera_values", "euler_xyz_to_matrix", "face_normals",
    "matrix_to_euler_xyz", "mesh_edges", "object_to_blender", "template_sphere", "uniform_laplacian",
    "vertex_normals",
]
