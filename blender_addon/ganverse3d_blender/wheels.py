"""The four wheels of a part-aware car: objects with their pivots at the hubs, turned by drivers.

The backend sends each wheel as a mesh in its own frame (origin at the hub, axes parallel to Blender's world
axes, so +X is the axle) and its hub in the car's frame (Blender's conventions: metres, Z up, the car's front
towards -Y, its left towards +X). Each wheel object is parented to the car with its origin at its hub and an
identity rest rotation; its ``rotation_euler`` (mode XYZ: the spin about the axle first, then the steering
about Z) is driven by the car's custom properties:

* spin ``x = (Distance + Speed * frame * fps_base / fps) / radius`` -- positive rolls the car forward: +θ about
  +X turns the wheel's top towards -Y, the car's front;
* steering ``z = Steer`` on the front wheels.

"Distance" (metres, the odometer) is what moves the wheels of a car that really moves: :func:`bake_distance`
keyframes it from the car's world-space travel. "Speed" turns them on a car that stands still (a car on a
rolling road, a turntable). The drivers are simple expressions (``driver.is_simple_expression``): Blender
evaluates them without Python, so they work in files opened with auto-run scripts off.
"""

import math
from dataclasses import dataclass

import bpy

WHEEL_NAMES = ("wheel_front_left", "wheel_front_right", "wheel_rear_left", "wheel_rear_right")
WHEEL_PROPERTY = "ganverse3d_wheel"  # on each wheel object: its name in WHEEL_NAMES
RIG_PROPERTIES = ("Speed", "Distance", "Steer")
TYRE, RIM = 0, 1  # material ids of a wheel's faces, and its material slots


@dataclass(frozen=True)
class Wheel:
    """One entry of mesh.json's "wheels" (see the module's docstring for the frames)."""

    name: str
    front: bool
    left: bool
    hub: tuple  # (x, y, z) metres, the car's frame
    radius: float  # metres
    width: float  # metres, along the axle
    vertices: list  # [V] (x, y, z) metres, the wheel's frame
    faces: list  # [F] (i, j, k), counter-clockwise seen from outside
    materials: list  # [F] TYRE or RIM


def _numbers(value, count: int, what: str) -> tuple:
    if not isinstance(value, list) or len(value) != count or \
            not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in value):
        raise ValueError(f"its {what} must be {count} numbers")
    return tuple(float(c) for c in value)


def parse_wheel(entry) -> Wheel:
    """A mesh.json wheel entry -> :class:`Wheel`; ValueError("its ... must ...") names what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError("it is not an object")
    name = entry.get("name")
    if name not in WHEEL_NAMES:
        raise ValueError(f"its name must be one of {', '.join(WHEEL_NAMES)}")
    front, left = entry.get("front"), entry.get("left")
    if (front, left) != ("front" in name, name.endswith("_left")):
        raise ValueError("its front and left flags must be booleans that agree with its name")
    hub = _numbers(entry.get("hub"), 3, "hub")
    radius, width = (_numbers([entry.get(key)], 1, key)[0] for key in ("radius", "width"))
    if radius <= 0 or width <= 0:
        raise ValueError("its radius and width must be positive")
    vertices, faces, materials = entry.get("vertices"), entry.get("faces"), entry.get("materials")
    if not isinstance(vertices, list) or not vertices:
        raise ValueError("its vertices must be a list of [x, y, z]")
    vertices = [_numbers(vertex, 3, "vertices") for vertex in vertices]
    if not isinstance(faces, list) or not faces or not all(
            isinstance(face, list) and len(face) == 3 and
            all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(vertices) for i in face)
            for face in faces):
        raise ValueError(f"its faces must be triples of vertex indices below {len(vertices)}")
    if not isinstance(materials, list) or len(materials) != len(faces) or \
            any(material not in (TYRE, RIM) or isinstance(material, bool) for material in materials):
        raise ValueError(f"its materials must be {len(faces)} ids, {TYRE} (tyre) or {RIM} (rim), one per face")
    return Wheel(name, front, left, hub, radius, width, vertices, [tuple(face) for face in faces], materials)


def wheel_object(car, wheel: Wheel, tyre, rim, scene, created: list):
    """The wheel as an object parented to ``car`` (which is still at the origin, unrotated, unscaled), its origin
    at the hub; named "<car> <wheel name>"; its spin follows ``scene``'s frame rate."""
    mesh = bpy.data.meshes.new(f"{car.name} {wheel.name}")
    created.append(mesh)
    mesh.from_pydata(wheel.vertices, [], wheel.faces)
    mesh.materials.append(tyre)  # slot TYRE
    mesh.materials.append(rim)  # slot RIM
    mesh.polygons.foreach_set("material_index", wheel.materials)
    mesh.polygons.foreach_set("use_smooth", [True] * len(mesh.polygons))
    mesh.update()
    obj = bpy.data.objects.new(mesh.name, mesh)
    created.append(obj)
    obj[WHEEL_PROPERTY] = wheel.name
    obj.parent = car  # the parent inverse stays identity: the car's frame is the world's here
    obj.location = wheel.hub
    obj.rotation_mode = "XYZ"
    _drive_wheel(obj, car, wheel, scene)
    return obj


def _car_variable(driver, name: str, car, prop: str) -> None:
    variable = driver.variables.new()
    variable.name = name
    variable.targets[0].id = car
    variable.targets[0].data_path = f'["{prop}"]'


def _drive_wheel(obj, car, wheel: Wheel, scene) -> None:
    spin = obj.driver_add("rotation_euler", 0).driver
    spin.type = "SCRIPTED"
    _car_variable(spin, "distance", car, "Distance")
    _car_variable(spin, "speed", car, "Speed")
    for name in ("fps", "fps_base"):  # the scene's frame rate: the seconds of a frame are fps_base / fps
        variable = spin.variables.new()
        variable.name = name
        variable.targets[0].id_type = "SCENE"
        variable.targets[0].id = scene
        variable.targets[0].data_path = f"render.{name}"
    spin.expression = f"(distance + speed * frame * fps_base / fps) / {wheel.radius!r}"
    if wheel.front:
        steer = obj.driver_add("rotation_euler", 2).driver
        steer.type = "SCRIPTED"
        _car_variable(steer, "steer", car, "Steer")
        steer.expression = "steer"


def add_rig_properties(car) -> None:
    """The car's Speed, Distance and Steer custom properties (all 0), with their units and descriptions."""
    descriptions = {
        "Speed": ("NONE", "Metres per second the wheels roll at while the car itself stands still (a turntable); "
                          "leave it 0 on a car that moves and bake its Distance instead"),
        "Distance": ("DISTANCE", "Odometer: metres the car has rolled forward (negative: backward); the wheels "
                                 "turn by Distance / radius. Bake Wheel Rotation keyframes it from the car's motion"),
        "Steer": ("ANGLE", "Steering angle of the front wheels (positive turns them to the left)"),
    }
    for name, (subtype, description) in descriptions.items():
        car[name] = 0.0
        limits = {"soft_min": -math.radians(40), "soft_max": math.radians(40)} if name == "Steer" else {}
        car.id_properties_ui(name).update(subtype=subtype, default=0.0, description=description, **limits)


def rigged_car(obj):
    """The car whose wheels ``obj`` rigs: ``obj`` itself (a car with the rig's properties) or its parent (a
    wheel); None otherwise."""
    if obj is not None and WHEEL_PROPERTY in obj:
        obj = obj.parent
    if obj is not None and all(name in obj for name in RIG_PROPERTIES):
        return obj
    return None


def _channel_fcurves(obj):
    """The F-curves collection of ``obj``'s action (Blender 5 keeps them in the action slot's channel bag), or
    None without an action."""
    animation = obj.animation_data
    if animation is None or animation.action is None:
        return None
    action = animation.action
    if hasattr(action, "fcurves"):  # Blender < 5
        return action.fcurves
    from bpy_extras import anim_utils
    channelbag = anim_utils.action_get_channelbag_for_slot(action, animation.action_slot)
    return channelbag.fcurves if channelbag is not None else None


def bake_distance(scene, car) -> list:
    """Keyframe ``car["Distance"]`` on every frame of the scene's range from the car's motion -> [(frame, metres)].

    Between two frames the car travels d = its world-space displacement along its forward direction (-Y of its
    world matrix), divided by its scale along that axis, so that the distance is in the car's own metres (those
    of the wheel radius). The odometer starts at 0 on the first frame; the keys are linear. Any earlier
    animation of Distance is replaced. The scene returns to its current frame.
    """
    current = scene.frame_current, scene.frame_subframe
    poses = []
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        matrix = car.matrix_world
        poses.append((frame, matrix.translation.copy(), matrix.col[1].xyz.copy()))
    keys, distance = [], 0.0
    for index, (frame, location, y_axis) in enumerate(poses):
        if index:
            _, previous_location, previous_y_axis = poses[index - 1]
            y_axis_between = (y_axis + previous_y_axis) / 2
            # Projected on the car's local Y (world length |y_axis| per local unit); forward is -Y.
            distance -= (location - previous_location).dot(y_axis_between) / y_axis_between.length_squared
        keys.append((frame, distance))
    fcurves = _channel_fcurves(car)
    old = fcurves.find('["Distance"]') if fcurves is not None else None
    if old is not None:
        fcurves.remove(old)
    for frame, value in keys:
        car["Distance"] = value
        car.keyframe_insert('["Distance"]', frame=frame)
    for point in _channel_fcurves(car).find('["Distance"]').keyframe_points:
        point.interpolation = "LINEAR"
    scene.frame_set(current[0], subframe=current[1])
    return keys
