"""Checks of the part-aware import (issue 20 §4), run both with the bpy wheel (test_part_car.py) and inside a real
``blender --background`` (tests/blender_headless/test_part_car_in_blender.py runs part_car_in_blender.py).

Each check imports the fake worker's part car (fake_worker.part_car_mesh / part_car_wheels: the mesh.json
contract's keys) through the add-on's operator into an emptied scene and asserts; it takes ``pythons``, the
backend launchers by fake behaviour ("part_car", "car", "bad_wheel", "world_car": the real worker's mesh.json
of a world car with its true parts). The add-on must be enabled.
"""

import json
import math
from pathlib import Path

import bpy
from mathutils import Matrix, Vector

import fake_worker
from ganverse3d_blender import part_materials, wheels

ADDON = "ganverse3d_blender"
LENGTH = 4.0
CAR = "car_photo"  # the photo is named photo.png
WHEEL_OBJECTS = [f"{CAR} {name}" for name in wheels.WHEEL_NAMES]
RADIUS = fake_worker.WHEEL_RADIUS


def clear_scene() -> None:
    bpy.data.batch_remove([*bpy.data.objects, *bpy.data.meshes, *bpy.data.materials, *bpy.data.cameras,
                           *bpy.data.curves, *bpy.data.actions, *bpy.data.collections,
                           *(image for image in bpy.data.images if image.type == "IMAGE")])
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end, scene.render.fps, scene.render.fps_base = 1, 25, 24, 1.0
    scene.frame_set(1)


def datablocks() -> dict:
    """Names of everything an import or a bake could create or change."""
    return {kind: sorted(getattr(bpy.data, kind).keys())
            for kind in ("objects", "meshes", "materials", "images", "cameras", "collections", "actions")}


def import_car(pythons: dict, photo: str, behaviour: str = "part_car", **options):
    """Import ``photo`` through the add-on with the fake worker ``behaviour`` -> the car object."""
    bpy.context.preferences.addons[ADDON].preferences.python = pythons[behaviour]
    clear_scene()
    assert bpy.ops.ganverse3d.import_photo(filepath=photo, length=LENGTH, **options) == {"FINISHED"}
    return bpy.data.objects[CAR]


def refresh(car) -> None:
    """Re-evaluate the drivers after a custom property of ``car`` was set from Python (which tags nothing)."""
    car.update_tag()
    bpy.context.view_layer.update()


def shader_of(material):
    return next(node for node in material.node_tree.nodes if node.type == "BSDF_PRINCIPLED")


def value(material, role: str):
    socket = part_materials.principled_input(shader_of(material), role)
    return socket.default_value if isinstance(socket.default_value, float) else tuple(socket.default_value)


def strength_driver(material):
    path = part_materials.principled_input(shader_of(material), "emission_strength").path_from_id("default_value")
    return material.node_tree.animation_data.drivers.find(path).driver


def check_principled_inputs_resolve_to_this_blenders_names(pythons, photo):
    created = []
    _, shader = part_materials.principled_material("probe", created)
    names = {role: part_materials.principled_input(shader, role).name for role in part_materials.PRINCIPLED_INPUT_NAMES}
    bpy.data.batch_remove(created)
    expected = ({"coat": "Coat Weight", "coat_roughness": "Coat Roughness", "transmission": "Transmission Weight",
                 "emission_color": "Emission Color", "emission_strength": "Emission Strength"}
                if bpy.app.version >= (4, 0, 0) else
                {"coat": "Clearcoat", "coat_roughness": "Clearcoat Roughness", "transmission": "Transmission",
                 "emission_color": "Emission", "emission_strength": "Emission Strength"})
    assert names == expected, names


def check_one_material_per_part_with_its_look(pythons, photo):
    car = import_car(pythons, photo)
    slots = [material.name for material in car.data.materials]
    assert slots == [f"{CAR}_{part}" for part in ("body", "window")] + [f"{CAR}_tyre"] + \
        [f"{CAR}_{part}" for part in ("headlight", "taillight", "plate")], slots
    body, window, tyre, headlight, taillight, plate = car.data.materials
    base = shader_of(body).inputs["Base Color"]
    assert base.is_linked and base.links[0].from_node.image.name == f"{CAR}_texture", "the paint is the photo"
    assert value(body, "coat") > 0.5 and value(body, "Roughness") < 0.5
    assert value(window, "transmission") == 1.0 and max(value(window, "Base Color")[:3]) < 0.1, "dark glass"
    assert all(abs(a - b) < 1e-6 for a, b in zip(value(headlight, "emission_color"), (1.0, 0.95, 0.85))), "white"
    red, green, blue, _ = value(taillight, "emission_color")
    assert red == 1.0 and green < 0.1 and blue < 0.1
    assert max(value(tyre, "Base Color")[:3]) < 0.05 and value(tyre, "Roughness") > 0.8, "dark rubber"
    assert value(plate, "Base Color")[0] > 0.5
    rim = bpy.data.materials[f"{CAR}_rim"]
    assert value(rim, "Metallic") == 1.0


def check_each_face_takes_the_slot_of_its_part_label(pythons, photo):
    car = import_car(pythons, photo)
    labels = fake_worker.part_car_mesh(LENGTH)["part_labels"]
    assert [polygon.material_index for polygon in car.data.polygons] == labels
    assert len(car.data.vertices) == len(fake_worker.part_car_mesh(LENGTH)["vertices"]), "the wheels are apart"


def check_the_lights_property_drives_both_emission_strengths(pythons, photo):
    car = import_car(pythons, photo)
    lights = {look: bpy.data.materials[f"{CAR}_{look}"] for look in part_materials.LIGHT_STRENGTHS}
    assert car["Lights"] == 1.0 and car.id_properties_ui("Lights").as_dict()["max"] == 1.0
    for material in lights.values():
        assert strength_driver(material).is_simple_expression, "works without Python auto-execution"
    strengths = {}
    for setting in (0.0, 1.0, 0.5):
        car["Lights"] = setting
        refresh(car)
        strengths[setting] = {look: value(material, "emission_strength") for look, material in lights.items()}
    assert strengths == {setting: {look: setting * strength for look, strength in
                                   part_materials.LIGHT_STRENGTHS.items()} for setting in (0.0, 1.0, 0.5)}, strengths
    assert "Lights" not in bpy.data.objects[WHEEL_OBJECTS[0]], "one switch, on the car"


def check_the_lights_shine_outwards_only(pythons, photo):
    import_car(pythons, photo)
    for look in part_materials.LIGHT_STRENGTHS:
        material = bpy.data.materials[f"{CAR}_{look}"]
        output = next(node for node in material.node_tree.nodes if node.type == "OUTPUT_MATERIAL")
        mix = output.inputs["Surface"].links[0].from_node
        assert mix.type == "MIX_SHADER", "the lamp's back faces (inside the shell) must not light the cabin"
        hidden = mix.inputs["Fac"].links[0].from_node  # back faces, seen by any ray but the camera's
        assert hidden.type == "MATH" and hidden.operation == "MULTIPLY"
        backfacing, not_camera = (socket.links[0].from_socket for socket in hidden.inputs[:2])
        assert backfacing.node.type == "NEW_GEOMETRY" and backfacing.name == "Backfacing"
        assert not_camera.node.operation == "SUBTRACT" and not_camera.node.inputs[0].default_value == 1.0
        assert not_camera.node.inputs[1].links[0].from_socket.name == "Is Camera Ray"
        assert mix.inputs[1].links[0].from_node == shader_of(material), "front faces: the lamp"
        back = mix.inputs[2].links[0].from_node
        assert back.type == "BSDF_DIFFUSE" and tuple(back.inputs["Color"].default_value)[:3] == (0.0, 0.0, 0.0)


def check_four_wheels_parented_with_their_origins_at_the_hubs(pythons, photo):
    car = import_car(pythons, photo)
    entries = {entry["name"]: entry for entry in fake_worker.part_car_wheels(LENGTH)}
    collection = bpy.data.collections["photo"]
    assert sorted(collection.objects.keys()) == sorted([CAR, "camera_photo", *WHEEL_OBJECTS])
    for name in wheels.WHEEL_NAMES:
        wheel = bpy.data.objects[f"{CAR} {name}"]
        assert wheel.parent == car and wheel[wheels.WHEEL_PROPERTY] == name
        assert wheel.matrix_parent_inverse == Matrix.Identity(4)
        assert (wheel.matrix_world.translation - Vector(entries[name]["hub"])).length < 1e-6
        assert wheel.matrix_world.to_3x3() == Matrix.Identity(3), "identity rest rotation"
        assert [m.name for m in wheel.data.materials] == [f"{CAR}_tyre", f"{CAR}_rim"]
        assert [p.material_index for p in wheel.data.polygons] == entries[name]["materials"]
        local = [tuple(v.co) for v in wheel.data.vertices]
        assert all(math.dist(a, b) < 1e-6 for a, b in zip(local, entries[name]["vertices"])), "mesh in hub frame"
    assert car["Speed"] == car["Distance"] == car["Steer"] == 0.0
    assert car.id_properties_ui("Steer").as_dict()["subtype"] == "ANGLE"
    assert car.id_properties_ui("Distance").as_dict()["subtype"] == "DISTANCE"


def wheel_spins() -> list:
    return [bpy.data.objects[name].rotation_euler.x for name in WHEEL_OBJECTS]


def check_one_metre_of_distance_turns_every_wheel_by_one_over_its_radius(pythons, photo):
    car = import_car(pythons, photo)
    for name in WHEEL_OBJECTS:
        assert all(fcurve.driver.is_simple_expression for fcurve in bpy.data.objects[name].animation_data.drivers)
    car["Distance"] = 1.0
    refresh(car)
    assert all(abs(spin - 1 / RADIUS) < 1e-5 for spin in wheel_spins()), wheel_spins()
    # Rolling forward: after 0.1 m the top of the wheel (hub + r up in the wheel's frame) has turned towards the
    # car's front, -Y, by r sin(0.1 / r).
    car["Distance"] = 0.1
    refresh(car)
    wheel = bpy.data.objects[WHEEL_OBJECTS[0]]
    top = wheel.matrix_world @ Vector((0, 0, RADIUS)) - wheel.matrix_world.translation
    assert abs(top.y + RADIUS * math.sin(0.1 / RADIUS)) < 1e-6 and top.y < 0, top
    car["Distance"] = -1.0
    refresh(car)
    assert all(abs(spin + 1 / RADIUS) < 1e-5 for spin in wheel_spins())


def check_speed_turns_the_wheels_with_the_scenes_time(pythons, photo):
    car = import_car(pythons, photo)
    scene = bpy.context.scene
    car["Speed"] = 2.0
    scene.render.fps, scene.render.fps_base = 30, 1.001  # 29.97 frames per second
    refresh(car)
    scene.frame_set(15)
    seconds = 15 * 1.001 / 30
    assert all(abs(spin - 2.0 * seconds / RADIUS) < 1e-5 for spin in wheel_spins()), wheel_spins()
    car["Distance"] = 0.5
    refresh(car)
    assert all(abs(spin - (0.5 + 2.0 * seconds) / RADIUS) < 1e-5 for spin in wheel_spins())


def check_steer_turns_the_front_wheels_only(pythons, photo):
    car = import_car(pythons, photo)
    car["Steer"] = 0.3
    refresh(car)
    steering = {name: round(bpy.data.objects[f"{CAR} {name}"].rotation_euler.z, 6) for name in wheels.WHEEL_NAMES}
    assert steering == {"wheel_front_left": 0.3, "wheel_front_right": 0.3, "wheel_rear_left": 0.0,
                        "wheel_rear_right": 0.0}, steering
    # The axle turns about Z, the spin stays about the (steered) axle: XYZ Euler applies x first, then z.
    wheel = bpy.data.objects[WHEEL_OBJECTS[0]]
    axle = wheel.matrix_world.to_3x3() @ Vector((1, 0, 0))
    assert (axle - Vector((math.cos(0.3), math.sin(0.3), 0))).length < 1e-6


def bake(car) -> list:
    bpy.context.view_layer.objects.active = car
    assert bpy.ops.ganverse3d.bake_wheel_rotation() == {"FINISHED"}
    bpy.context.scene.frame_set(bpy.context.scene.frame_end)
    return wheel_spins()


def check_baking_a_car_keyframed_one_metre_forward_turns_its_wheels_by_one_over_r(pythons, photo):
    car = import_car(pythons, photo)
    for frame, y in ((1, 0.0), (25, -1.0)):  # forward is -Y
        car.location.y = y
        car.keyframe_insert("location", index=1, frame=frame)
    spins = bake(car)
    assert all(abs(spin - 1 / RADIUS) < 1e-4 for spin in spins), spins
    bpy.context.scene.frame_set(1)
    assert all(abs(spin) < 1e-9 for spin in wheel_spins())
    assert bpy.context.scene.frame_current == 1


def check_baking_a_turned_scaled_car_backing_up_counts_its_own_metres_backwards(pythons, photo):
    car = import_car(pythons, photo)
    car.rotation_euler.z = math.pi / 2  # the car's front now points at world +X
    car.scale = (2.0, 2.0, 2.0)  # wheels of radius 2r: one turn of 1/r takes 2 m
    for frame, x in ((1, 0.0), (25, -2.0)):  # 2 m towards -X: backwards
        car.location.x = x
        car.keyframe_insert("location", index=0, frame=frame)
    spins = bake(car)
    assert all(abs(spin + 1 / RADIUS) < 1e-4 for spin in spins), spins
    spins_again = bake(car)  # a second bake replaces the first
    assert spins_again == spins


def follow_path(car, points: list, cyclic: bool, offsets: list) -> None:
    """Drive ``car`` along a poly line through ``points`` [(x, y)] (world metres, on the ground) with a Follow Path
    constraint, its front along the path; its offset keyframed at ``offsets`` [(frame, factor)], linearly (a
    constant speed); the scene's range becomes that of ``offsets``."""
    curve = bpy.data.curves.new("path", "CURVE")
    curve.dimensions = "3D"  # a 2D curve's cyclic splines are turned clockwise (for filling): keep their order
    spline = curve.splines.new("POLY")
    spline.points.add(len(points) - 1)
    for point, (x, y) in zip(spline.points, points):
        point.co = (x, y, 0.0, 1.0)
    spline.use_cyclic_u = cyclic
    path = bpy.data.objects.new("path", curve)
    bpy.context.scene.collection.objects.link(path)
    follow = car.constraints.new("FOLLOW_PATH")
    follow.target, follow.use_curve_follow, follow.use_fixed_location = path, True, True
    follow.forward_axis, follow.up_axis = "TRACK_NEGATIVE_Y", "UP_Z"
    for frame, offset in offsets:
        follow.offset_factor = offset
        car.keyframe_insert(f'constraints["{follow.name}"].offset_factor', frame=frame)
    for fcurve in wheels._channel_fcurves(car):
        for point in fcurve.keyframe_points:
            point.interpolation = "LINEAR"
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = offsets[0][0], offsets[-1][0]


def circle(radius: float, points: int, clockwise: bool = False) -> list:
    """``points`` corners of a circle of ``radius`` about the origin, counter-clockwise seen from above (a left
    turn for a car that drives along it) unless ``clockwise``."""
    turn = -1 if clockwise else 1
    return [(radius * math.cos(turn * math.tau * index / points), radius * math.sin(turn * math.tau * index / points))
            for index in range(points)]


def steers(car) -> list:
    """The car's baked Steer on every frame of the scene, as its front wheels show it."""
    scene = bpy.context.scene
    angles = []
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        front = [bpy.data.objects[f"{CAR} {name}"].rotation_euler.z for name in wheels.WHEEL_NAMES[:2]]
        assert abs(front[0] - front[1]) < 1e-9 and abs(front[0] - car["Steer"]) < 1e-6
        angles.append(front[0])
    return angles


def check_baking_a_car_following_a_circular_path_turns_its_wheels_by_the_path_length(pythons, photo):
    car = import_car(pythons, photo)
    radius, points = 10.0, 64
    follow_path(car, circle(radius, points), cyclic=True, offsets=[(1, 0.0), (97, 0.5)])  # half way round
    half_polygon = points / 2 * 2 * radius * math.sin(math.pi / points)
    spins = bake(car)
    travelled = car["Distance"]
    assert abs(abs(travelled) - half_polygon) < 0.01 * half_polygon, (travelled, half_polygon)
    assert travelled > 0, "the car drives forward along the path"
    assert all(abs(spin - travelled / RADIUS) < 1e-4 for spin in spins)


def turns_left(car) -> bool:
    """Whether the car's path bends to the left (counter-clockwise seen from above) over the scene's first frames,
    from its positions alone."""
    scene = bpy.context.scene
    positions = []
    for frame in range(scene.frame_start, scene.frame_start + 3):
        scene.frame_set(frame)
        positions.append(car.matrix_world.translation.copy())
    return (positions[1] - positions[0]).cross(positions[2] - positions[1]).z > 0


def check_baking_steer_on_a_circle_gives_atan_of_the_wheelbase_over_the_radius(pythons, photo):
    hubs = {entry["name"]: Vector(entry["hub"]) for entry in fake_worker.part_car_wheels(LENGTH)}
    wheelbase = ((hubs["wheel_front_left"] + hubs["wheel_front_right"]) / 2 -
                 (hubs["wheel_rear_left"] + hubs["wheel_rear_right"]) / 2).length
    radius = 10.0
    expected = math.atan(wheelbase / radius)
    errors = []
    for clockwise in (False, True):
        # A quarter of the circle at 0.52 m a frame, then a stop: the wheels stay turned.
        offsets = [(1, 0.0), (31, 0.25), (41, 0.25)]
        for backwards in (False, True):
            car = import_car(pythons, photo)
            follow_path(car, circle(radius, 64, clockwise), cyclic=True,
                        offsets=[(frame, 0.25 - offset if backwards else offset) for frame, offset in offsets])
            bake(car)
            assert (car["Distance"] < 0) == backwards, car["Distance"]
            # Backing up along a left bend, the car's heading turns right; its front wheels still point left.
            assert turns_left(car) == ((not clockwise) != backwards)
            angles = steers(car)
            sign = -1 if clockwise else 1
            assert all(abs(angle - sign * expected) < 0.01 * expected for angle in angles), angles
            errors.append(max(abs(angle / (sign * expected) - 1) for angle in angles))
    print(f"steer on a circle: wheelbase {wheelbase:.3f} m, radius {radius} m, atan(wheelbase / radius) "
          f"{math.degrees(expected):.3f} degrees; largest relative error (all frames) {max(errors):.2e}")


def check_baking_steer_clamps_it_to_its_soft_limits(pythons, photo):
    car = import_car(pythons, photo)
    follow_path(car, circle(1.0, 64), cyclic=True, offsets=[(1, 0.0), (25, 0.5)])  # atan(2.4 / 1) = 67 degrees
    bake(car)
    limit = math.radians(40) * (1 if turns_left(car) else -1)
    assert all(abs(angle - limit) < 1e-6 for angle in steers(car)), steers(car)


def check_baking_steer_on_a_straight_path_keys_exactly_zero(pythons, photo):
    car = import_car(pythons, photo)
    car["Steer"] = 0.2
    car.keyframe_insert('["Steer"]', frame=10)  # an earlier animation, replaced by the bake
    start = Vector((500.3, -1.7, 0))  # far from the origin, at an odd angle: float32 noise in the heading
    end = start + 30 * Vector((math.cos(0.7), math.sin(0.7), 0))
    follow_path(car, [start.xy, end.xy], cyclic=False, offsets=[(1, 0.0), (97, 1.0)])
    bake(car)
    assert abs(car["Distance"] - 30) < 1e-3, car["Distance"]
    keys = wheels._channel_fcurves(car).find('["Steer"]').keyframe_points
    assert [tuple(key.co) for key in keys] == [(frame, 0.0) for frame in range(1, 98)]
    assert steers(car) == [0.0] * 97


def check_baking_steer_needs_the_wheels_and_says_so_in_one_sentence(pythons, photo):
    car = import_car(pythons, photo)
    bpy.data.batch_remove([bpy.data.objects[name] for name in WHEEL_OBJECTS])
    for frame, y in ((1, 0.0), (25, -1.0)):
        car.location.y = y
        car.keyframe_insert("location", index=1, frame=frame)
    before = {name: car[name] for name in wheels.RIG_PROPERTIES}
    bpy.context.view_layer.objects.active = car
    try:
        bpy.ops.ganverse3d.bake_wheel_rotation()
    except RuntimeError as failure:
        message = str(failure).strip()
    else:
        raise AssertionError("baking the steer of a car without wheels succeeded")
    assert message == (f"Error: {CAR} has no front and rear wheel objects to measure its wheelbase from; turn Bake "
                       f"Steer off, or import the car again with Separate Wheels."), message
    fcurves = wheels._channel_fcurves(car)
    assert [fcurve.data_path for fcurve in fcurves] == ["location"], "nothing baked"
    assert {name: car[name] for name in wheels.RIG_PROPERTIES} == before
    assert bpy.ops.ganverse3d.bake_wheel_rotation(bake_steer=False) == {"FINISHED"}
    assert sorted(fcurve.data_path for fcurve in fcurves) == ['["Distance"]', "location"]
    assert abs(fcurves.find('["Distance"]').evaluate(25) - 1.0) < 1e-6
    car = import_car(pythons, photo, separate_wheels=False)  # no rig at all: the operator is not available
    bpy.context.view_layer.objects.active = car
    try:
        bpy.ops.ganverse3d.bake_wheel_rotation()
    except RuntimeError as failure:
        assert "Select a car imported with Separate Wheels." in str(failure), str(failure)
    else:
        raise AssertionError("baking a car without a rig succeeded")


def check_the_backends_own_mesh_json_of_a_world_car_builds_the_same_rig(pythons, photo):
    car = import_car(pythons, photo, behaviour="world_car")
    launcher = Path(pythons["world_car"])
    mesh = json.loads(fake_worker.kept_mesh(launcher.with_name("world_car_starts.txt")).read_text())
    assert [polygon.material_index for polygon in car.data.polygons] == mesh["part_labels"]
    assert len(car.data.materials) == len(mesh["part_names"]) == 6
    car["Distance"] = 1.0
    refresh(car)
    for entry in mesh["wheels"]:
        wheel = bpy.data.objects[f"{CAR} {entry['name']}"]
        assert (wheel.matrix_world.translation - Vector(entry["hub"])).length < 1e-5
        assert abs(wheel.rotation_euler.x - 1 / entry["radius"]) < 1e-5
        assert len(wheel.data.polygons) == len(entry["faces"])
        # The rim is on the outer side: +X for a left wheel (the car's left is Blender's +X).
        rim_x = [polygon.center.x for polygon in wheel.data.polygons if polygon.material_index == wheels.RIM]
        assert (sum(rim_x) > 0) == entry["left"]


def check_without_parts_the_import_is_the_old_single_material_one(pythons, photo):
    car = import_car(pythons, photo, behaviour="car")
    assert [m.name for m in car.data.materials] == [CAR] and len(car.data.polygons) == 4
    assert not car.children and not any(name in car for name in ("Lights", "Speed", "Distance", "Steer"))
    assert sorted(bpy.data.materials.keys()) == [CAR]


def check_with_both_options_off_one_textured_material_and_the_wheels_in_the_body(pythons, photo):
    car = import_car(pythons, photo, part_materials=False, separate_wheels=False)
    body = fake_worker.part_car_mesh(LENGTH)
    wheel_entries = fake_worker.part_car_wheels(LENGTH)
    assert [m.name for m in car.data.materials] == [CAR, f"{CAR}_tyre", f"{CAR}_rim"]
    assert not car.children and not any(name in car for name in ("Lights", "Speed", "Distance", "Steer"))
    indices = [polygon.material_index for polygon in car.data.polygons]
    assert indices == [0] * len(body["faces"]) + [1 + m for entry in wheel_entries for m in entry["materials"]]
    hub = Vector(wheel_entries[0]["hub"])
    first_wheel = car.data.vertices[len(body["vertices"])].co
    assert (first_wheel - hub - Vector(wheel_entries[0]["vertices"][0])).length < 1e-6, "at the hub"
    texture = shader_of(car.data.materials[0]).inputs["Base Color"].links[0].from_node.image
    assert texture.name == f"{CAR}_texture"


def check_part_materials_off_keeps_one_material_and_rigged_wheels(pythons, photo):
    car = import_car(pythons, photo, part_materials=False)
    assert [m.name for m in car.data.materials] == [CAR] and "Lights" not in car
    assert sorted(child.name for child in car.children) == sorted(WHEEL_OBJECTS) and "Distance" in car


def check_a_bad_wheel_entry_is_one_sentence_and_leaves_the_scene_as_it_was(pythons, photo):
    import_car(pythons, photo)
    bpy.context.preferences.addons[ADDON].preferences.python = pythons["bad_wheel"]
    before = datablocks()
    try:
        bpy.ops.ganverse3d.import_photo(filepath=photo, length=LENGTH)
    except RuntimeError as failure:
        message = str(failure).strip()
    else:
        raise AssertionError("the import of a bad wheel succeeded")
    assert message.startswith("Error: The backend's mesh ") and message.endswith(
        "mesh.json has a bad wheel entry 3: its radius and width must be positive."), message
    assert "\n" not in message
    assert datablocks() == before


def check_one_undo_step_removes_the_whole_part_car(pythons, photo):
    bpy.context.preferences.addons[ADDON].preferences.python = pythons["part_car"]
    clear_scene()
    bpy.ops.ed.undo_push(message="before the import")
    before = datablocks()
    assert bpy.ops.ganverse3d.import_photo("EXEC_DEFAULT", True, filepath=photo, length=LENGTH) == {"FINISHED"}
    after = datablocks()
    assert set(after["objects"]) - set(before["objects"]) == {CAR, "camera_photo", *WHEEL_OBJECTS}
    assert len(set(after["materials"]) - set(before["materials"])) == 7  # 5 parts' + tyre + rim
    assert bpy.ops.ed.undo() == {"FINISHED"}
    assert datablocks() == before
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert datablocks() == after
    car = bpy.data.objects[CAR]
    car["Distance"] = 1.0
    refresh(car)
    assert all(abs(spin - 1 / RADIUS) < 1e-5 for spin in wheel_spins()), "the redone car's drivers work"


CHECKS = {name: check for name, check in globals().items() if name.startswith("check_")}
