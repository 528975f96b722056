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
keyframes it from the car's world-space travel, and :func:`bake_steer` keyframes "Steer" from how the car turns
on that travel. "Speed" turns them on a car that stands still (a car on a rolling road, a turntable). The
drivers are simple expressions (``driver.is_simple_expression``): Blender evaluates them without Python, so they
work in files opened with auto-run scripts off.
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


@dataclass(frozen=True)
class TrackPoint:
    """Where a car is on one frame of its motion, as :func:`car_track` measures it."""

    frame: int
    distance: float  # the odometer: the car's own metres travelled forward since the first frame (backward < 0)
    heading: float  # radians: the car's forward axis (-Y) in the world's XY plane, counter-clockwise from +X


def car_track(scene, car) -> list:
    """The car's :class:`TrackPoint` on every frame of the scene's range, from its world matrix (keyframes,
    parents and constraints such as Follow Path alike); the scene returns to its current frame.

    Between two frames the car travels d = its world-space displacement along its forward direction (-Y of its
    world matrix), divided by its scale along that axis, so that the distance is in the car's own metres (those
    of the wheel radius and hubs).
    """
    current = scene.frame_current, scene.frame_subframe
    poses = []
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        matrix = car.matrix_world
        poses.append((frame, matrix.translation.copy(), matrix.col[1].xyz.copy()))
    scene.frame_set(current[0], subframe=current[1])
    track, distance = [], 0.0
    for index, (frame, location, y_axis) in enumerate(poses):
        if index:
            _, previous_location, previous_y_axis = poses[index - 1]
            y_axis_between = (y_axis + previous_y_axis) / 2
            # Projected on the car's local Y (world length |y_axis| per local unit); forward is -Y.
            distance -= (location - previous_location).dot(y_axis_between) / y_axis_between.length_squared
        track.append(TrackPoint(frame, distance, math.atan2(-y_axis.y, -y_axis.x)))
    return track


def _replace_keys(car, name: str, keys: list) -> None:
    """Keyframe the custom property ``name`` of ``car`` at [(frame, value)] with linear keys, replacing any
    earlier animation of it."""
    fcurves = _channel_fcurves(car)
    old = fcurves.find(f'["{name}"]') if fcurves is not None else None
    if old is not None:
        fcurves.remove(old)
    for frame, value in keys:
        car[name] = value
        car.keyframe_insert(f'["{name}"]', frame=frame)
    for point in _channel_fcurves(car).find(f'["{name}"]').keyframe_points:
        point.interpolation = "LINEAR"


def bake_distance(car, track: list) -> list:
    """Keyframe ``car["Distance"]`` on every frame of ``track`` (:func:`car_track`) -> [(frame, metres)]: the
    odometer, 0 on the first frame; linear keys, replacing any earlier animation of Distance."""
    keys = [(point.frame, point.distance) for point in track]
    _replace_keys(car, "Distance", keys)
    return keys


def wheelbase(car):
    """Metres (the car's own) between the middle of its front hubs and the middle of its rear hubs, from its
    wheel objects; None when it has no front or no rear wheel."""
    hubs = {True: [], False: []}  # front?
    for child in car.children:
        if child.get(WHEEL_PROPERTY) in WHEEL_NAMES:
            hubs["front" in child[WHEEL_PROPERTY]].append(child.matrix_local.translation)
    if not hubs[True] or not hubs[False]:
        return None
    front, rear = ([sum(coordinates) / len(hubs[end]) for coordinates in zip(*hubs[end])] for end in (True, False))
    return math.dist(front, rear)


# Below this change of heading (radians) between the frames around a frame, the car drives straight: the float32
# world matrices of a car on a straight Follow Path wobble its heading by up to 5e-7 rad (measured up to 5 km
# from the origin); a real turn this slight is a curve of over 8 km radius at 1 m/s and 24 frames per second (the
# radius scales with speed / frame rate: a car crawling at 0.1 m/s keys curves wider than 800 m as straight).
HEADING_NOISE = 1e-5
# Below this travel (the car's metres) between the frames around a frame, the car stands still: its steer stays.
STANDSTILL = 1e-6


def bake_steer(car, track: list, wheelbase: float) -> list:
    """Keyframe ``car["Steer"]`` on every frame of ``track`` (:func:`car_track`) -> [(frame, radians)]: the
    bicycle model's steering angle, atan(wheelbase * curvature), clamped to Steer's soft limits.

    The curvature is d(heading) / d(distance) of the car's forward axis over its signed travel, as a central
    difference over the frames around each frame (one-sided on the first and the last). Heading of the car's
    body, not of its velocity: what the front wheels steer is how the body turns, a car backing up keeps its
    steer (its heading and its distance both change sign), and a car that stands still keeps a heading. On a
    standstill the steer holds its last value (0 before the car first moves). Linear keys, replacing any
    earlier animation of Steer.
    """
    limits = car.id_properties_ui("Steer").as_dict()
    keys, steer = [], 0.0
    for index, point in enumerate(track):
        before, after = track[max(index - 1, 0)], track[min(index + 1, len(track) - 1)]
        travel = after.distance - before.distance
        turn = math.remainder(after.heading - before.heading, math.tau)
        if abs(travel) >= STANDSTILL:
            steer = 0.0 if abs(turn) < HEADING_NOISE else math.atan(wheelbase * turn / travel)
            steer = min(max(steer, limits["soft_min"]), limits["soft_max"])
        keys.append((point.frame, steer))
    _replace_keys(car, "Steer", keys)
    return keys
