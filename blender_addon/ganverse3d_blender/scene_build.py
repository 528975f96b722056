"""Turn the worker's reconstruct result into Blender data: the textured car and its matching camera.

Runs on Blender's main thread. The worker already speaks Blender's conventions (protocol version 2): vertices in
metres in Blender's world (Z up, the car's front towards -Y, lowest vertex at z = 0), counter-clockwise faces,
one UV per face corner with v up, and the camera's location / XYZ Euler rotation / lens / sensor with
``sensor_fit`` VERTICAL. So nothing is converted here, only built. Either everything is built or, when anything
fails, everything created so far is removed again and the scene is as it was.

Each import goes into a collection of its own, named after the photo, holding the car and its camera; the
car's texture is named after the car and packed into the .blend, and the car is smooth shaded (the per-face
``use_smooth`` flag, which Blender 3.x and 5.x both have). The car remembers the id under which the worker keeps
its reconstruction (the custom property ``ganverse3d_reconstruction``), which the Neural Preview renders; the
import operator adds the reconstruct request's arguments as JSON (``ganverse3d_reconstruct``).

A backend with part labels adds to mesh.json the optional keys "part_names", "part_labels" (one per face),
"wheels" (four meshes with their hubs and radii) and "wheel_colours" (the tyre's and rim's base colours as the
photo shows them). Then the body gets one material slot per part
(:mod:`part_materials`, the car's "Lights" property switching its lights) and the wheels become four objects
parented to the body, turned by drivers from the car's "Speed", "Distance" and "Steer" (:mod:`wheels`); the
import's options can keep the one textured material and join the wheels into the body instead. Without those
keys the car is built as it always was: one mesh, one textured material.
"""

import json
import os
import struct
from dataclasses import dataclass

import bpy

from . import part_materials, wheels


class BuildError(Exception):
    """The worker's files or answer cannot be turned into a car; the message is one sentence."""


@dataclass
class MeshFile:
    """The worker's mesh.json: the body and, from a backend with part labels, its parts and wheels."""

    vertices: list  # [V] (x, y, z)
    faces: list  # [F] (i, j, k)
    uvs: list  # [6F] u, v per face corner
    part_names: list | None  # [P] names, or None: no part labels
    part_labels: list | None  # [F] indices into part_names
    wheels: list  # [4] wheels.Wheel, or [] (no wheels in the file)
    wheel_colours: dict  # {"tyre" | "rim": (r, g, b, 1) linear}, for those the photo shows; else {}


def _read_mesh(path: str) -> MeshFile:
    """``mesh.json`` -> :class:`MeshFile`, checked for shape and range (the parts' keys are optional)."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as error:
        raise BuildError(f"The backend's mesh {path} cannot be read: {error.strerror or error}.") from None
    except ValueError:
        raise BuildError(f"The backend's mesh {path} is not valid JSON.") from None
    try:
        vertices = [tuple(float(c) for c in vertex) for vertex in data["vertices"]]
        faces = [tuple(int(i) for i in face) for face in data["faces"]]
        uvs = [float(c) for uv in data["uvs"] for c in uv]
    except (KeyError, TypeError, ValueError):
        raise BuildError(f"The backend's mesh {path} lacks vertices, faces or uvs as lists of numbers.") from None
    if not faces or any(len(v) != 3 for v in vertices) or any(len(f) != 3 for f in faces):
        raise BuildError(f"The backend's mesh {path} must have 3 coordinates per vertex and 3 corners per face.")
    if any(not 0 <= i < len(vertices) for face in faces for i in face):
        raise BuildError(f"The backend's mesh {path} has faces that point past its {len(vertices)} vertices.")
    if len(uvs) != 6 * len(faces):
        raise BuildError(f"The backend's mesh {path} has {len(uvs) // 2} uvs; it needs one per face corner "
                         f"({3 * len(faces)}).")
    part_names, part_labels = _read_parts(data, len(faces), path)
    return MeshFile(vertices, faces, uvs, part_names, part_labels, _read_wheels(data, path),
                    _read_wheel_colours(data, path))


def _read_parts(data: dict, face_count: int, path: str) -> tuple[list | None, list | None]:
    names, labels = data.get("part_names"), data.get("part_labels")
    if names is None and labels is None:
        return None, None
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise BuildError(f"The backend's mesh {path} has part labels but no part_names as a list of names.")
    if not isinstance(labels, list) or len(labels) != face_count or not all(
            isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(names) for label in labels):
        raise BuildError(f"The backend's mesh {path} must have one part label per face ({face_count}), each an "
                         f"index below {len(names)} into its part_names.")
    return names, labels


def _read_wheels(data: dict, path: str) -> list:
    entries = data.get("wheels")
    if entries is None:
        return []
    if not isinstance(entries, list) or len(entries) != len(wheels.WHEEL_NAMES):
        raise BuildError(f"The backend's mesh {path} must have {len(wheels.WHEEL_NAMES)} wheels, one of each of "
                         f"{', '.join(wheels.WHEEL_NAMES)}.")
    parsed = []
    for index, entry in enumerate(entries):
        try:
            parsed.append(wheels.parse_wheel(entry))
        except ValueError as error:
            raise BuildError(f"The backend's mesh {path} has a bad wheel entry {index + 1}: {error}.") from None
    if sorted(wheel.name for wheel in parsed) != sorted(wheels.WHEEL_NAMES):
        raise BuildError(f"The backend's mesh {path} must have {len(wheels.WHEEL_NAMES)} wheels, one of each of "
                         f"{', '.join(wheels.WHEEL_NAMES)}.")
    return parsed


def _read_wheel_colours(data: dict, path: str) -> dict:
    colours = data.get("wheel_colours", {})
    try:
        if not isinstance(colours, dict) or not set(colours) <= {"tyre", "rim"}:
            raise ValueError
        parsed = {material: tuple(float(c) for c in colour) + (1.0,) for material, colour in colours.items()}
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or any(len(colour) != 4 or not all(0.0 <= c <= 1.0 for c in colour)
                             for colour in parsed.values()):
        raise BuildError(f"The backend's mesh {path} has wheel_colours that are not tyre / rim colours of three "
                         "numbers from 0 to 1.")
    return parsed


def _field(result: dict, *keys):
    value = result
    try:
        for key in keys:
            value = value[key]
    except (KeyError, TypeError):
        raise BuildError(f"The backend's answer lacks '{'.'.join(keys)}'.") from None
    return value


def _load_packed_image(path: str, name: str, created: list):
    """Load an image file and pack it into the .blend, so the file travels without the backend's temp folder."""
    if not os.path.isfile(path):
        raise BuildError(f"The backend's image {path} does not exist.")
    try:
        image = bpy.data.images.load(path, check_existing=False)
    except RuntimeError:
        raise BuildError(f"Blender cannot read the backend's image {path}.") from None
    created.append(image)
    image.name = name
    image.pack()
    return image


def _png_aspect(path: str) -> float:
    """Width / height of the PNG file at ``path``, from its header (the image need not be loaded into Blender)."""
    try:
        with open(path, "rb") as file:
            header = file.read(24)
    except OSError as error:
        raise BuildError(f"The backend's image {path} cannot be read: {error.strerror or error}.") from None
    # The 8-byte signature, then the IHDR chunk: length, type, width and height (big-endian).
    width, height = struct.unpack(">II", header[16:24]) if len(header) == 24 else (0, 0)
    if header[:8] != b"\x89PNG\r\n\x1a\n" or header[12:16] != b"IHDR" or not width or not height:
        raise BuildError(f"The backend's image {path} is not a PNG file.")
    return width / height


def _joined_wheels(mesh_file: MeshFile, first_wheel_slot: int) -> tuple[list, list, list, list]:
    """The wheels as part of the body's mesh -> (vertices, faces, uvs, material indices) to append to the body's.

    Their faces take the slots ``first_wheel_slot`` (tyre) and the one after it (rim), their uvs (0, 0).
    """
    vertices, faces, uvs, slots = [], [], [], []
    for wheel in mesh_file.wheels:
        offset = len(mesh_file.vertices) + len(vertices)
        vertices += [tuple(h + c for h, c in zip(wheel.hub, vertex)) for vertex in wheel.vertices]
        faces += [tuple(offset + i for i in face) for face in wheel.faces]
        uvs += [0.0] * 6 * len(wheel.faces)
        slots += [first_wheel_slot + material for material in wheel.materials]
    return vertices, faces, uvs, slots


def _car_object(name: str, vertices: list, faces: list, uvs: list, created: list) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    created.append(mesh)
    mesh.from_pydata(vertices, [], faces)
    # from_pydata makes face i's corners loops 3i, 3i+1, 3i+2 in the given order: the uvs' order.
    mesh.uv_layers.new(name="UVMap").data.foreach_set("uv", uvs)
    # use_smooth rather than Mesh.shade_smooth(): the latter only exists from Blender 4.1 on.
    mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    mesh.update()
    car = bpy.data.objects.new(name, mesh)
    created.append(car)
    return car


def _build_body(name: str, mesh_file: MeshFile, texture_path: str, with_parts: bool, separate_wheels: bool,
                scene, created: list) -> tuple[bpy.types.Object, list]:
    """The car's body with its materials, and its wheel objects (parented, rigged; none when the wheels are part
    of the body or the file has none) -> (car, wheel objects).

    Material slots: one per part in part_names order (``with_parts``), or one textured material; then the tyre
    and the rim when the wheels are joined into the body.
    """
    body_slot_count = len(mesh_file.part_names) if with_parts else 1
    joined = _joined_wheels(mesh_file, body_slot_count) if mesh_file.wheels and not separate_wheels \
        else ([], [], [], [])
    car = _car_object(name, mesh_file.vertices + joined[0], mesh_file.faces + joined[1], mesh_file.uvs + joined[2],
                      created)
    # Texture and material are named after the car as Blender named it (a second import of a photo makes
    # car_<photo>.001), so that each car's texture is found by its name in the .blend.
    texture = _load_packed_image(texture_path, f"{car.name}_texture", created)
    tyre = rim = None
    if mesh_file.wheels or (with_parts and "wheel" in mesh_file.part_names):
        tyre = part_materials.look_material(f"{car.name}_tyre", "tyre", created,
                                            base_colour=mesh_file.wheel_colours.get("tyre"))
    if mesh_file.wheels:
        rim = part_materials.look_material(f"{car.name}_rim", "rim", created,
                                           base_colour=mesh_file.wheel_colours.get("rim"))
    if with_parts:
        part_materials.add_lights_property(car)
        by_part = part_materials.part_materials(car, mesh_file.part_names, texture, tyre, created)
        for part in mesh_file.part_names:
            car.data.materials.append(by_part[part])
        body_slots = mesh_file.part_labels
    else:
        # The import without parts: one Principled BSDF with the texture, as before parts existed.
        material, shader = part_materials.principled_material(car.name, created)
        part_materials.link_texture(material, shader, texture)
        car.data.materials.append(material)
        body_slots = [0] * len(mesh_file.faces)
    if joined[3]:
        car.data.materials.append(tyre)
        car.data.materials.append(rim)
    car.data.polygons.foreach_set("material_index", body_slots + joined[3])
    wheel_objects = []
    if mesh_file.wheels and separate_wheels:
        wheels.add_rig_properties(car)
        wheel_objects = [wheels.wheel_object(car, wheel, tyre, rim, scene, created) for wheel in mesh_file.wheels]
    return car, wheel_objects


RECONSTRUCTION_PROPERTY = "ganverse3d_reconstruction"
REQUEST_PROPERTY = "ganverse3d_reconstruct"


def _camera_object(name: str, camera_result: dict, photo, created: list) -> bpy.types.Object:
    data = bpy.data.cameras.new(name)
    created.append(data)
    data.type = "PERSP"
    data.lens_unit = "MILLIMETERS"
    data.sensor_fit = _field(camera_result, "sensor_fit")
    data.sensor_width = _field(camera_result, "sensor_width")
    data.sensor_height = _field(camera_result, "sensor_height")
    data.lens = _field(camera_result, "lens")
    if photo is not None:
        data.show_background_images = True
        background = data.background_images.new()
        background.image = photo
        background.alpha = 1.0
    camera = bpy.data.objects.new(name, data)
    created.append(camera)
    camera.rotation_mode = "XYZ"
    camera.location = _field(camera_result, "location")
    camera.rotation_euler = _field(camera_result, "rotation_euler")
    return camera


def fit_photo_to_frame(camera: bpy.types.Object, scene: bpy.types.Scene) -> None:
    """Scale the camera's square background photo to span the frame's height, whatever the render aspect.

    The camera uses sensor_fit VERTICAL: its vertical field of view is the photo's, and the frame's width
    follows the render aspect. 'FIT' scales the photo to the frame's smaller side and 'CROP' to its larger side,
    so the square photo spans the height with 'FIT' in a landscape (or square) frame and with 'CROP' in a
    portrait frame (its sides then reach past the frame's).
    """
    landscape = scene.render.resolution_x * scene.render.pixel_aspect_x >= \
        scene.render.resolution_y * scene.render.pixel_aspect_y
    for background in camera.data.background_images:
        background.frame_method = "FIT" if landscape else "CROP"


def match_render_aspect(scene: bpy.types.Scene, aspect: float) -> None:
    """Set the render resolution to a frame of ``aspect`` (width / height), keeping its larger side.

    The larger of the current width and height (in pixels) stays the larger one (a 1920 x 1080 render becomes
    1920 x 1920 for a square camera), so the render keeps its detail; the pixel aspect is kept and allowed for,
    so the frame itself, not only its pixel count, has the camera's aspect.
    """
    render = scene.render
    side = max(render.resolution_x, render.resolution_y)
    pixels_wide_per_high = aspect * render.pixel_aspect_y / render.pixel_aspect_x
    if pixels_wide_per_high >= 1:
        render.resolution_x, render.resolution_y = side, max(1, round(side / pixels_wide_per_high))
    else:
        render.resolution_x, render.resolution_y = max(1, round(side * pixels_wide_per_high)), side


def build_car(context, result: dict, photo_path: str, create_camera: bool, photo_background: bool,
              with_part_materials: bool = True, separate_wheels: bool = True):
    """Build the car (and camera) from a reconstruct ``result`` (see the worker protocol) in a new collection.

    When the mesh has part labels, ``with_part_materials`` gives each part its material (else the whole body
    has the textured one); when it has wheels, ``separate_wheels`` makes them four rigged objects parented to the
    car (else they are part of the car's mesh, with their tyre and rim materials).

    The collection is named after the photo (Blender makes the name unique) and is a child of the active
    collection. Returns (car object, camera object or None). The car is selected and active; the camera becomes
    the scene camera and the render resolution takes the framed photo's aspect (see :func:`match_render_aspect`).
    Raises :class:`BuildError` (or, for a bug, anything else) after removing whatever it had created.
    """
    stem = os.path.splitext(os.path.basename(photo_path))[0]
    scene = context.scene
    parent = context.view_layer.active_layer_collection.collection
    created = []
    try:
        mesh_file = _read_mesh(_field(result, "mesh"))
        with_parts = with_part_materials and mesh_file.part_names is not None
        car, wheel_objects = _build_body(f"car_{stem}", mesh_file, _field(result, "texture"), with_parts,
                                         separate_wheels, scene, created)
        car[RECONSTRUCTION_PROPERTY] = str(_field(result, "reconstruction"))
        camera = None
        if create_camera:
            framed_photo = _field(result, "framed_photo")
            # The reconstruction's camera saw the framed photo and nothing else: its vertical field of view spans
            # the photo's height (sensor_fit VERTICAL), and the sensor's width says nothing (the worker sends a
            # square sensor whatever the frame). Blender widens the frame to the render's aspect, so only a render
            # of the framed photo's aspect (square: the worker crops the car square) shows what that camera saw.
            aspect = _png_aspect(framed_photo)
            photo = _load_packed_image(framed_photo, f"photo_{stem}", created) if photo_background else None
            camera = _camera_object(f"camera_{stem}", _field(result, "camera"), photo, created)
    except BaseException:
        bpy.data.batch_remove(created)  # objects, meshes, materials, images, cameras made so far
        raise
    # Nothing below can fail on valid data: from here on the scene changes.
    collection = bpy.data.collections.new(stem)
    parent.children.link(collection)
    collection.objects.link(car)
    for wheel in wheel_objects:
        collection.objects.link(wheel)
    if camera is not None:
        collection.objects.link(camera)
        scene.camera = camera
        match_render_aspect(scene, aspect)
        fit_photo_to_frame(camera, scene)
    for selected in context.selected_objects:
        selected.select_set(False)
    car.select_set(True)
    context.view_layer.objects.active = car
    return car, camera

