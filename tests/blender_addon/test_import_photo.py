"""Import Car from Photo with the real backend worker (synchronous path, as under ``blender --background``):
what it builds, that it matches the backend's reconstruction in Blender's frame, that Cycles sees it from the
created camera as our renderer sees the reconstruction, that one undo removes it, and that every failure
leaves the scene untouched with one sentence.

The worker runs with this test run's interpreter (``sys.executable``), started once for the module.
"""

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import bpy
import addon_utils  # Blender's own module: importable once bpy is
import numpy as np
import pytest
import torch
from PIL import Image

from ganverse3d.api import reconstruct
from ganverse3d.geometry import object_to_blender
from ganverse3d.geometry.wheels import replace_wheels
from ganverse3d_blender import scene_build, session, wheels

import fake_worker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "blender_conventions"))
from blender_scene import iou, our_mask, render_cycles_alpha  # noqa: E402  (the convention tests' helpers)

ADDON = "ganverse3d_blender"
PHOTO = Path(__file__).resolve().parents[2] / "docs" / "example_car.png"
LENGTH = 3.8  # not the default, so that the test sees the option arrive
RESOLUTION = 128
MIN_IOU = 0.95  # the bar
MAX_WRONG_IOU = 0.9


def preferences():
    return bpy.context.preferences.addons[ADDON].preferences


@pytest.fixture(scope="module", autouse=True)
def addon():
    """The add-on enabled with this interpreter as the backend; the worker starts once for the module."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the worker shares the machine with the test run
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    yield
    addon_utils.disable(ADDON, default_set=True, handle_error=None)  # also shuts the worker down


@pytest.fixture(autouse=True)
def real_backend():
    """Every test starts with the real backend configured (a test may point it at a fake)."""
    settings = preferences()
    settings.python, settings.model, settings.device, settings.timeout = sys.executable, "", "CPU", 300


def clear_scene() -> bpy.types.Scene:
    bpy.data.batch_remove([*bpy.data.objects, *bpy.data.meshes, *bpy.data.materials, *bpy.data.cameras,
                           *bpy.data.lights, *(image for image in bpy.data.images if image.type == "IMAGE"),
                           *bpy.data.collections])
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = RESOLUTION
    scene.render.resolution_percentage = 100
    return scene


def datablocks() -> dict:
    """Names of everything an import could create or change."""
    return {"objects": sorted(bpy.data.objects.keys()), "meshes": sorted(bpy.data.meshes.keys()),
            "materials": sorted(bpy.data.materials.keys()), "images": sorted(bpy.data.images.keys()),
            "cameras": sorted(bpy.data.cameras.keys()), "collections": sorted(bpy.data.collections.keys()),
            "scene camera": getattr(bpy.context.scene.camera, "name", None),
            "render": (bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y),
            "collection": sorted(bpy.context.scene.collection.all_objects.keys())}


def import_photo(*blender_call_arguments, **options):
    """Run the operator and time it; returns (result set, seconds)."""
    began = time.monotonic()
    result = bpy.ops.ganverse3d.import_photo(*blender_call_arguments, **{"filepath": str(PHOTO), **options})
    return result, time.monotonic() - began


@dataclass
class Imported:
    result: set
    seconds: float
    before: dict
    after: dict


@pytest.fixture(scope="module")
def imported(addon) -> Imported:
    """One import of the example photo (cold worker) into an empty scene with a 128 x 128 render."""
    clear_scene()
    before = datablocks()
    result, seconds = import_photo(length=LENGTH)
    print(f"\nimport with a cold worker: {seconds:.2f} s")
    return Imported(result, seconds, before, datablocks())


@pytest.fixture(scope="module")
def reconstruction():
    """The backend's own reconstruction of the same photo, in this process."""
    return reconstruct(PHOTO, device="cpu")


def sent_mesh(reconstruction):
    """What the worker sends, in object space -> (vertices [V, 3] float64, the TexturedMesh): with a part branch
    the part mesh with its wheel blobs pulled in (the wheels come as objects of their own), else the mesh."""
    mesh = reconstruction.part_mesh or reconstruction.mesh
    if mesh.part_labels is None:
        return mesh.verts.double(), mesh
    return torch.from_numpy(replace_wheels(mesh.verts, mesh.faces, mesh.part_labels)[0]).double(), mesh


def wheel_objects(car: str, reconstruction) -> set:
    """The wheel objects that the import of ``reconstruction`` as ``car`` adds (Separate Wheels is on)."""
    return {f"{car} {name}" for name in wheels.WHEEL_NAMES} if reconstruction.part_mesh is not None else set()


def test_import_creates_exactly_one_car_its_wheels_and_one_camera(imported, reconstruction):
    assert imported.result == {"FINISHED"}
    new_objects = set(imported.after["objects"]) - set(imported.before["objects"])
    assert new_objects == {"car_example_car", "camera_example_car", *wheel_objects("car_example_car", reconstruction)}
    car, camera = bpy.data.objects["car_example_car"], bpy.data.objects["camera_example_car"]
    assert (car.type, camera.type) == ("MESH", "CAMERA")
    assert imported.after["collection"] == sorted(new_objects)
    assert bpy.context.scene.render.resolution_x == bpy.context.scene.render.resolution_y == RESOLUTION
    assert bpy.context.scene.camera == camera
    assert tuple(car.location) == (0, 0, 0) and tuple(car.rotation_euler) == (0, 0, 0)
    assert tuple(car.scale) == (1, 1, 1)
    assert bpy.context.view_layer.objects.active == car and car.select_get()
    assert bpy.context.window_manager.ganverse3d.import_status.startswith(
        "Imported car_example_car and camera_example_car (3.80 m long) in ")


def test_the_mesh_is_the_reconstruction_in_blender_frame_scaled_and_on_the_ground(imported, reconstruction):
    mesh = bpy.data.objects["car_example_car"].data
    vertices = np.array([vertex.co for vertex in mesh.vertices], dtype=np.float64)
    faces = np.array([polygon.vertices for polygon in mesh.polygons])
    ours, sent = sent_mesh(reconstruction)
    # Object space (+Y up, front +Z) -> Blender (Z up, front -Y), scaled to the length, lifted onto the ground.
    expected = np.array([object_to_blender(v) for v in ours.tolist()])
    expected *= LENGTH / float(ours[:, 2].max() - ours[:, 2].min())
    expected[:, 2] -= expected[:, 2].min()
    np.testing.assert_allclose(vertices, expected, atol=1e-4)
    np.testing.assert_array_equal(faces, sent.faces.numpy())
    assert abs(vertices[:, 2].min()) < 1e-5, "the car stands on the ground"
    assert vertices[:, 1].max() - vertices[:, 1].min() == pytest.approx(LENGTH, abs=1e-4), "length along Y"
    assert np.ptp(vertices[:, 1]) > np.ptp(vertices[:, 0]), "the car's long axis is Blender's Y"


def test_uvs_smooth_shading_and_a_textured_material_with_packed_images(imported, reconstruction):
    car = bpy.data.objects["car_example_car"]
    mesh = car.data
    assert [layer.name for layer in mesh.uv_layers] == ["UVMap"]
    uvs = np.zeros(2 * len(mesh.loops))
    mesh.uv_layers["UVMap"].data.foreach_get("uv", uvs)
    expected = sent_mesh(reconstruction)[1].face_uvs.double().reshape(-1, 2).numpy().copy()
    expected[:, 1] = 1 - expected[:, 1]  # ours: v down from the top; Blender's: v up from the bottom
    np.testing.assert_allclose(uvs.reshape(-1, 2), expected, atol=1e-6)
    assert all(polygon.use_smooth for polygon in mesh.polygons)

    body_materials = ["car_example_car"] if reconstruction.part_mesh is None else \
        ["car_example_car_body", "car_example_car_window", "car_example_car_tyre", "car_example_car_headlight",
         "car_example_car_taillight", "car_example_car_plate"]
    assert [material.name for material in mesh.materials] == body_materials
    nodes = mesh.materials[0].node_tree.nodes
    shader = next(node for node in nodes if node.type == "BSDF_PRINCIPLED")
    base_colour = shader.inputs["Base Color"]
    assert base_colour.is_linked and base_colour.links[0].from_node.type == "TEX_IMAGE"
    texture = base_colour.links[0].from_node.image
    assert texture.packed_file is not None, "the texture must travel inside the .blend"
    assert texture.name == "car_example_car_texture", "the texture is named after the car"
    # Blender's pixels run bottom row first; the backend's texture top row first.
    width, height = texture.size
    pixels = np.zeros(4 * width * height, dtype=np.float32)
    texture.pixels.foreach_get(pixels)
    pixels = pixels.reshape(height, width, 4)[::-1, :, :3]
    ours = reconstruction.mesh.texture.permute(1, 2, 0).numpy()
    assert pixels.shape == ours.shape
    assert np.abs(pixels - ours).max() <= 1 / 255 + 1e-6

    camera = bpy.data.objects["camera_example_car"].data
    assert camera.sensor_fit == "VERTICAL" and camera.show_background_images
    background = camera.background_images[0]
    assert background.image.packed_file is not None and background.frame_method == "FIT"


def test_the_tyres_and_rims_take_the_colours_the_photo_shows(imported, reconstruction):
    mesh = reconstruction.part_mesh
    if mesh is None:
        pytest.fail("the embedded default has a part branch: the example car's import must have wheels")
    colours = reconstruction.wheel_colours(replace_wheels(mesh.verts, mesh.faces, mesh.part_labels)[2])
    assert set(colours) == {"tyre", "rim"}, "the example photo shows the car's left wheels"
    assert colours["rim"][0] > 2 * colours["rim"][2], "its rims are gold"
    for material in ("tyre", "rim"):
        shader = next(node for node in bpy.data.materials[f"car_example_car_{material}"].node_tree.nodes
                      if node.type == "BSDF_PRINCIPLED")
        np.testing.assert_allclose(tuple(shader.inputs["Base Color"].default_value), (*colours[material], 1.0),
                                   rtol=1e-6)


def test_each_import_is_a_collection_of_its_own_named_after_the_photo(imported, reconstruction):
    assert set(imported.after["collections"]) - set(imported.before["collections"]) == {"example_car"}
    collection = bpy.data.collections["example_car"]
    assert sorted(collection.objects.keys()) == sorted(["camera_example_car", "car_example_car",
                                                        *wheel_objects("car_example_car", reconstruction)])
    assert sorted(collection.all_objects.keys()) == sorted(collection.objects.keys())
    scene_collection = bpy.context.scene.collection
    assert collection.name in scene_collection.children, "a child of the collection that was active"
    assert not scene_collection.objects, "nothing of the import lies outside its collection"
    for name in collection.objects.keys():
        assert [c.name for c in bpy.data.objects[name].users_collection] == ["example_car"]


def test_the_photo_spans_the_frame_height_for_landscape_and_portrait_renders(imported):
    scene, camera = bpy.context.scene, bpy.data.objects["camera_example_car"]
    methods = {}
    try:
        for resolution in ((1920, 1080), (128, 128), (1080, 1920)):
            scene.render.resolution_x, scene.render.resolution_y = resolution
            scene_build.fit_photo_to_frame(camera, scene)
            methods[resolution] = camera.data.background_images[0].frame_method
    finally:
        scene.render.resolution_x = scene.render.resolution_y = RESOLUTION
    assert methods == {(1920, 1080): "FIT", (128, 128): "FIT", (1080, 1920): "CROP"}


def wrong_conventions(car):
    """Mistakes an importer could make, applied to the imported object: yield each name while applied."""
    original = car.matrix_world.copy()
    mistakes = {
        # (x, y, z) -> (x, z, y) instead of (x, -z, y): front and back swap (a handedness error)
        "front_towards_plus_y": lambda: car.scale.__setitem__(1, -1.0),
        # object space taken as Blender's: the car lies on its side with its front up
        "y_up_left_unconverted": lambda: car.rotation_euler.__setitem__(0, -np.pi / 2),
    }
    for name, apply in mistakes.items():
        apply()
        bpy.context.view_layer.update()
        yield name
        car.matrix_world = original
        bpy.context.view_layer.update()


def test_cycles_sees_the_import_from_its_camera_as_our_renderer_sees_the_reconstruction(imported, reconstruction,
                                                                                          tmp_path):
    scene = bpy.context.scene
    assert (scene.render.resolution_x, scene.render.resolution_y) == (RESOLUTION, RESOLUTION)
    mesh = reconstruction.mesh  # the part mesh, if any, is the same surface (its faces split into 16)
    camera = reconstruction.camera.to(dtype=torch.float64)
    ours = our_mask(mesh.verts.double(), mesh.faces, mesh.face_uvs.double(), camera, (RESOLUTION, RESOLUTION))
    blender = render_cycles_alpha(scene, tmp_path) >= 0.5
    assert 0.05 < blender.mean() < 0.8, "the car must fill a fair part of the frame"
    score = iou(ours, blender)
    print(f"\nIoU, Cycles from the created camera vs our renderer: {score:.4f}")
    assert score >= MIN_IOU

    # The comparison can fail: the same render with a mistake in the import, or our mask read bottom-up.
    wrong_scores = {"image_rows_bottom_up": iou(ours[::-1], blender)}
    for name in wrong_conventions(bpy.data.objects["car_example_car"]):
        wrong_scores[name] = iou(ours, render_cycles_alpha(scene, tmp_path) >= 0.5)
    print("IoU with a wrong convention:", {name: round(value, 4) for name, value in wrong_scores.items()})
    assert all(value < MAX_WRONG_IOU for value in wrong_scores.values()), wrong_scores


def test_check_backend_reports_versions_device_and_model_in_one_line():
    assert bpy.ops.ganverse3d.check_backend() == {"FINISHED"}
    summary = bpy.context.window_manager.ganverse3d.backend
    assert summary.startswith("ganverse3d 0.1.0 · torch ")
    assert summary.endswith(" · cpu · model inverse.safetensors (embedded)")


def expect_untouched_failure(sentence_start: str, **options) -> str:
    """Run the import expecting one error sentence that starts with ``sentence_start`` and no change at all."""
    before = datablocks()
    with pytest.raises(RuntimeError) as failure:
        import_photo(**options)
    message = str(failure.value).strip()
    assert message.startswith(f"Error: {sentence_start}"), message
    assert "\n" not in message and "Traceback" not in message
    assert datablocks() == before, "a failed import must leave the scene untouched"
    status = bpy.context.window_manager.ganverse3d
    assert status.import_status == message.removeprefix("Error: ") and status.import_status_failed
    return message


def test_a_python_without_the_backend_fails_with_advice_and_changes_nothing(imported, fake_python):
    preferences().python, _ = fake_python("exit")
    advice = f"The backend Python {preferences().python} does not have the ganverse3d package"
    expect_untouched_failure(advice)
    with pytest.raises(RuntimeError, match="does not have the ganverse3d package"):
        bpy.ops.ganverse3d.check_backend()
    assert bpy.context.window_manager.ganverse3d.backend.startswith(advice)


def test_a_crashing_worker_is_reported_with_its_last_words_and_changes_nothing(imported, fake_python):
    preferences().python, _ = fake_python("crash")
    expect_untouched_failure("The backend worker stopped during 'reconstruct' (exit code 3): "
                             "Fatal Python error: Segmentation fault")


def test_a_worker_writing_garbage_fails_and_changes_nothing(imported, fake_python):
    preferences().python, _ = fake_python("garbage")
    expect_untouched_failure("The backend worker wrote something that is not a protocol line")


def test_a_hung_worker_times_out_and_changes_nothing(imported, fake_python):
    preferences().python, _ = fake_python("hang")
    preferences().timeout = 1
    began = time.monotonic()
    expect_untouched_failure("The backend did not finish 'reconstruct' within 1 s")
    assert time.monotonic() - began < 5


def test_a_build_that_fails_half_way_removes_what_it_had_made(imported, fake_python):
    preferences().python, _ = fake_python("bad_mesh")
    expect_untouched_failure("The backend's mesh ")


def test_while_the_backend_is_busy_neither_operator_starts(imported, fake_python):
    preferences().python, _ = fake_python("hang")
    running = session.worker_client(bpy.context).request("reconstruct", photo=str(PHOTO))
    try:
        before = datablocks()
        for operator in (bpy.ops.ganverse3d.import_photo, bpy.ops.ganverse3d.check_backend):
            with pytest.raises(RuntimeError, match="The backend is busy; wait for the running request or press Esc"):
                operator()
        assert datablocks() == before and not running.done
    finally:
        session.cancel_worker()
    assert running.error == "Cancelled 'reconstruct'."


def test_the_backends_input_errors_and_a_missing_photo_are_reported(imported, tmp_path):
    empty_road = tmp_path / "empty_road.png"
    Image.new("RGB", (320, 240), (120, 120, 120)).save(empty_road)
    expect_untouched_failure("No car found", filepath=str(empty_road))
    expect_untouched_failure(f"The photo {tmp_path / 'missing.jpg'} does not exist.",
                             filepath=str(tmp_path / "missing.jpg"))


def test_a_mask_goes_to_the_backend_and_a_missing_one_is_reported(imported, tmp_path):
    # The example photo imports without a mask (the `imported` fixture); with an all-black mask it has no car.
    empty_mask = tmp_path / "empty_mask.png"
    Image.new("L", Image.open(PHOTO).size, 0).save(empty_mask)
    expect_untouched_failure("No car found", mask=str(empty_mask))
    expect_untouched_failure(f"The mask {tmp_path / 'missing.png'} does not exist.", mask=str(tmp_path / "missing.png"))


def test_one_undo_step_removes_the_whole_import(imported, reconstruction):
    # In background mode Blender starts without an undo stack; the first undo_push creates it. Operators
    # called from Python push their own step only when asked (the `undo` argument) and only with the UNDO flag.
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 2 * RESOLUTION, RESOLUTION  # the import squares it
    bpy.ops.ed.undo_push(message="before the import")
    before = datablocks()
    result, seconds = import_photo("EXEC_DEFAULT", True)
    print(f"\nimport with a warm worker: {seconds:.2f} s")
    assert result == {"FINISHED"}
    after = datablocks()
    imported_objects = {"car_example_car.001", "camera_example_car.001",
                        *wheel_objects("car_example_car.001", reconstruction)}
    assert set(after["objects"]) - set(before["objects"]) == imported_objects
    assert set(after["collections"]) - set(before["collections"]) == {"example_car.001"}
    assert sorted(bpy.data.collections["example_car.001"].objects.keys()) == sorted(imported_objects)
    material = bpy.data.objects["car_example_car.001"].data.materials[0]
    textures = [node.image.name for node in material.node_tree.nodes if node.type == "TEX_IMAGE"]
    body = "car_example_car.001" + ("" if reconstruction.part_mesh is None else "_body")
    assert (material.name, textures) == (body, ["car_example_car.001_texture"]), \
        "the second car's texture is named after it, not after the first car"
    assert before["render"] == (2 * RESOLUTION, RESOLUTION) and after["render"] == (2 * RESOLUTION, 2 * RESOLUTION)
    assert after["scene camera"] == "camera_example_car.001"
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert datablocks() == before
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert datablocks() == after


def test_scripted_calls_and_repeat_last_each_import_a_car_before_returning(imported, fake_python):
    """Scripts, Repeat Last and Adjust Last Operation run execute(), which returns with the car built (the bpy
    module's ed.undo_redo crashes even for Blender's own operators, so the redo runs in
    tests/blender_headless/test_redo_in_blender_gui.py, with Blender's UI)."""
    preferences().python, _ = fake_python("car")
    clear_scene()
    results = [import_photo("EXEC_DEFAULT", True, length=length)[0] for length in (3.0, 4.0)]
    assert results == [{"FINISHED"}, {"FINISHED"}]
    assert bpy.context.window_manager.operators[-1].bl_idname == "GANVERSE3D_OT_import_photo"
    bpy.ops.screen.repeat_last()
    cars = {obj.name: round(obj.dimensions.y, 3) for obj in bpy.data.objects if obj.type == "MESH"}
    assert cars == {"car_example_car": 3.0, "car_example_car.001": 4.0, "car_example_car.002": 4.0}


def test_the_render_becomes_square_keeping_its_larger_side_when_the_camera_is_created(fake_python):
    """The worker's framed photo and camera are square: a landscape or portrait render would show past the
    photo's sides (or crop them), so the import makes the frame square; without a camera it leaves it alone."""
    preferences().python, _ = fake_python("car")
    scene = clear_scene()
    renders = {}
    for resolution, create_camera in (((1920, 1080), True), ((1080, 1920), True), ((640, 640), True),
                                      ((1920, 1080), False)):
        scene.render.resolution_x, scene.render.resolution_y = resolution
        assert import_photo(create_camera=create_camera)[0] == {"FINISHED"}
        renders[resolution, create_camera] = (scene.render.resolution_x, scene.render.resolution_y)
        if create_camera:
            assert scene.camera.data.background_images[0].frame_method == "FIT"
    assert renders == {((1920, 1080), True): (1920, 1920), ((1080, 1920), True): (1920, 1920),
                       ((640, 640), True): (640, 640), ((1920, 1080), False): (1920, 1080)}
    assert scene.render.resolution_percentage == 100


@pytest.mark.parametrize("framed_size, expected", [((300, 200), (1920, 1280)), ((200, 300), (1280, 1920))])
def test_the_render_takes_the_framed_photos_aspect_not_the_sensors(fake_python, tmp_path, framed_size, expected):
    """The worker's sensor is square whatever the frame; the framed photo is what the camera saw. The fake worker
    returns the photo it is given as the framed photo, so a non-square photo stands in for a non-square crop."""
    preferences().python, _ = fake_python("car")
    scene = clear_scene()
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    photo = tmp_path / "wide_car.png"
    Image.new("RGB", framed_size, (200, 30, 30)).save(photo)
    assert import_photo(filepath=str(photo))[0] == {"FINISHED"}
    assert (scene.camera.data.sensor_width, scene.camera.data.sensor_height) == (36, 36)
    assert (scene.render.resolution_x, scene.render.resolution_y) == expected


def test_a_framed_photo_that_is_not_a_png_fails_and_changes_nothing(fake_python, tmp_path):
    preferences().python, _ = fake_python("car")
    clear_scene()
    photo = tmp_path / "car.jpg"
    Image.open(PHOTO).convert("RGB").save(photo)  # the fake worker copies it into photo_framed.png as it is
    expect_untouched_failure("The backend's image ", filepath=str(photo))
    assert bpy.context.window_manager.ganverse3d.import_status.endswith("photo_framed.png is not a PNG file.")


def test_quality_and_texture_size_go_to_the_worker(fake_python):
    preferences().python, starts = fake_python("car")
    clear_scene()
    for options in ({}, {"quality": "BALANCED"}, {"quality": "BEST", "texture_size": "512"},
                    {"texture_size": "4096"}):
        assert import_photo(**options)[0] == {"FINISHED"}
    requests = [request for request in fake_worker.received(starts) if request["op"] == "reconstruct"]
    assert [(request["quality"], request["texture_size"]) for request in requests] == \
        [("fast", None), ("balanced", None), ("best", 512), ("fast", 4096)]
    assert not any("fit_steps" in request for request in requests), "fitting steps are the quality's"


def test_the_backend_bakes_the_texture_that_quality_and_texture_size_ask_for():
    """Through the real worker: Balanced bakes the photo at its 1024 pixels high (twice as wide), an explicit
    Texture Size overrides Fast's network texture, which Fast alone keeps (the `imported` fixture)."""
    sizes = {}
    for options in ({"quality": "BALANCED"}, {"quality": "FAST", "texture_size": "512"}):
        clear_scene()
        assert import_photo(**options)[0] == {"FINISHED"}
        texture = bpy.data.images["car_example_car_texture"]
        sizes[tuple(options.values())] = tuple(texture.size)
        assert texture.packed_file is not None
    assert sizes == {("BALANCED",): (2048, 1024), ("FAST", "512"): (1024, 512)}


def test_a_square_frame_with_non_square_pixels_allows_for_the_pixel_aspect():
    scene = bpy.context.scene
    try:
        scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
        scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = 2.0, 1.0
        scene_build.match_render_aspect(scene, 1.0)
        assert (scene.render.resolution_x, scene.render.resolution_y) == (960, 1920)  # 960 * 2 == 1920
        scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = 1.0, 1.0
        scene_build.match_render_aspect(scene, 2.0)
        assert (scene.render.resolution_x, scene.render.resolution_y) == (1920, 960)
    finally:
        scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0


def test_from_a_landscape_render_the_created_camera_still_sees_the_car_as_the_photo_does(reconstruction, tmp_path):
    """Imported into a 16:9 scene, the render becomes square and Cycles sees the car from the created camera as
    our renderer sees the reconstruction in the (square) framed photo."""
    scene = clear_scene()
    scene.render.resolution_x, scene.render.resolution_y = 2 * RESOLUTION, 9 * RESOLUTION // 8
    result, seconds = import_photo(length=LENGTH)
    assert result == {"FINISHED"}
    side = 2 * RESOLUTION
    assert (scene.render.resolution_x, scene.render.resolution_y) == (side, side)
    mesh = reconstruction.mesh
    camera = reconstruction.camera.to(dtype=torch.float64)
    ours = our_mask(mesh.verts.double(), mesh.faces, mesh.face_uvs.double(), camera, (side, side))
    blender = render_cycles_alpha(scene, tmp_path, samples=4) >= 0.5
    score = iou(ours, blender)
    print(f"\nIoU from a landscape scene, Cycles vs our renderer at {side} x {side}: {score:.4f}")
    assert score >= MIN_IOU
