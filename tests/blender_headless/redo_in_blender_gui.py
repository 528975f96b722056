"""Run by ``xvfb-run -a blender --python`` from test_redo_in_blender_gui.py: with Blender's UI (an event loop,
timers, the undo stack), import a photo the ways a user does, and print one JSON line per step, then quit.

    xvfb-run -a blender --factory-startup --enable-event-simulate \
        --python tests/blender_headless/redo_in_blender_gui.py -- BACKEND_PYTHON PHOTO PART_CAR_BACKEND_PYTHON

The steps, in order, each on the car names and lengths the scene then holds:

* ``invoke``: the Import button (``'INVOKE_DEFAULT'``): a modal run, driven by Blender's timer events, with
  what the sidebar showed the last time it was drawn (nothing moves the mouse here: only a redraw that the
  add-on asked for updates it);
* ``redo``: Adjust Last Operation with Length 5 m, Quality Best and Texture Size 2048 (``ed.undo_redo`` after
  editing the last operator's properties, which is what the redo panel does);
* ``repeat``: Repeat Last (``screen.repeat_last``, what Shift+R runs);
* ``script``: two scripted calls (``bpy.ops.ganverse3d.import_photo(...)``), each of which must return with
  its car built;
* ``file_browser``: the Import button with an empty Photo field: a photo chosen in the file browser (Return
  pressed there), which must appear in the panel's Photo field and be imported;
* ``check_from_preferences``: Check Backend in the preferences window, and what the sidebar of the main
  window showed the last time it was drawn: its Import button is greyed while the backend is busy, so it
  must be redrawn when the check ends, although the check ran in another window;
* ``part_car_invoke``, ``part_car_undo``, ``part_car_invoke_again``, ``part_car_adjusted``: with the fake
  ``part_car`` backend, the Import button (a car with part materials and four rigged wheels), Undo (the whole
  import goes), the Import button again, Adjust Last Operation with Separate Wheels off (the wheels become
  part of the car's mesh);
* ``file_browser_again``, ``invoke_after_file_browser``, ``adjusted_after_file_browser``, ``undo_adjusted``,
  ``undo_file_browser``: an import through the file browser (2.5 m), another by the Import button (3.5 m),
  Adjust Last Operation on that one in the redo panel itself (4.5 m typed into its Length field), then Undo
  twice: the first removes only the adjusted car, the second the file browser's.

The other Adjust Last Operation and Repeat Last steps are called with bpy.ops' ``undo`` argument set, so that
they add their undo step as the redo panel and Shift+R do (:func:`adjust_last_operation`).

Each step runs from a timer, inside the 3D viewport's context as a click would; the file browser gets a
simulated key press (``--enable-event-simulate`` makes Blender take input only from ``Window.event_simulate``).
The next step starts once the modal run has finished. A crash shows as Blender's exit status and missing lines;
an exception, in a step or before the first, prints its traceback and ends Blender at once with exit status 1
(a timer's exception would only stop the timer, and Blender would wait for the test's timeout).
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path

import addon_utils
import bpy

ROOT = Path(__file__).resolve().parents[2]
ADDON = "ganverse3d_blender"
MODAL_TIMEOUT_S = 60
sidebar_draws = []  # (import status, backend status, backend busy) each time the 3D viewport's sidebar is drawn


def emit(step: str, **fields) -> None:
    cars = sorted((obj.name, round(obj.dimensions.y, 3)) for obj in bpy.data.objects if obj.name.startswith("car_"))
    collections = sorted((c.name, sorted(c.objects.keys())) for c in bpy.data.collections
                         if c.name.startswith("example_car"))
    render = [bpy.context.scene.render.resolution_x, bpy.context.scene.render.resolution_y]
    print("STEP " + json.dumps({"step": step, "cars": cars, "collections": collections, "render": render, **fields}),
          flush=True)


def viewport_context() -> dict:
    window = bpy.context.window_manager.windows[0]
    area = next(area for area in window.screen.areas if area.type == "VIEW_3D")
    region = next(region for region in area.regions if region.type == "WINDOW")
    return {"window": window, "area": area, "region": region}


def record_sidebar_draw() -> None:
    status = bpy.context.window_manager.ganverse3d
    sidebar_draws.append((status.import_status, status.backend, sys.modules[ADDON].session.worker_busy()))


def wait_for_import(cars_before: int):
    """Yield until the scene holds one more car, or a timeout; then a few more ticks for redraws."""
    deadline = time.monotonic() + MODAL_TIMEOUT_S
    while len([obj for obj in bpy.data.objects if obj.name.startswith("car_")]) == cars_before:
        if time.monotonic() > deadline:
            return
        yield
    for _ in range(3):
        yield


def press(where: dict, key: str, at: tuple[int, int] | None = None, ctrl: bool = False) -> None:
    """Press and release ``key`` (with Ctrl) with the mouse at ``at`` (window pixels), by default over the middle
    of ``where``'s region."""
    window, region = where["window"], where["region"]
    x, y = at or (region.x + region.width // 2, region.y + region.height // 2)
    window.event_simulate(type="MOUSEMOVE", value="NOTHING", x=x, y=y)
    for value in ("PRESS", "RELEASE"):
        window.event_simulate(type=key, value=value, x=x, y=y, ctrl=ctrl)


def file_browser_context() -> dict:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "FILE_BROWSER":
                return {"window": window, "area": area,
                        "region": next(region for region in area.regions if region.type == "WINDOW")}
    raise AssertionError("the file browser did not open")


def car_count() -> int:
    return len([obj for obj in bpy.data.objects if obj.name.startswith("car_")])


def import_from_file_browser(photo: str, length: float):
    """The Import button with an empty Photo field, ``photo`` chosen in the file browser (Return pressed there)."""
    cars_before = car_count()
    with bpy.context.temp_override(**viewport_context()):
        bpy.ops.ganverse3d.import_photo("INVOKE_DEFAULT", True, filepath="", length=length)
    yield
    browser = file_browser_context()
    browser["area"].spaces.active.params.directory = str(Path(photo).parent).encode()
    browser["area"].spaces.active.params.filename = Path(photo).name
    press(browser, "RET")
    yield from wait_for_import(cars_before)


def adjust_last_operation(**properties) -> set:
    """Adjust Last Operation: set ``properties`` on the last registered operator and redo it as the redo panel does.

    The ``True`` is bpy.ops' ``undo`` argument. Left out, Blender keeps the call from adding to the undo history
    (``WM_operator_call_py``), so the redone operator would get no undo step of its own: the history would stay
    at the step before the adjusted import, and the next Undo would also remove the import before it. The redo
    panel is no Python call, so there the redone operator gets its step.
    """
    last = bpy.context.window_manager.operators[-1]
    for name, value in properties.items():
        setattr(last.properties, name, value)
    with bpy.context.temp_override(**viewport_context()):
        return bpy.ops.ed.undo_redo("EXEC_DEFAULT", True)


def adjust_in_redo_panel(shown: str, value: str):
    """Adjust Last Operation in the 3D viewport's redo panel itself: put ``value`` in the field that shows ``shown``.

    A factory startup's splash screen, a popup that takes every event, is closed first (Esc), and the panel, which
    starts collapsed, opened by a click on its header. The field is found by hovering down the panel's right half
    and copying (Ctrl+C) what is under the mouse; Ctrl+V pastes ``value`` into it, which redoes the operator as
    typing the value would.
    """
    viewport = viewport_context()
    press(viewport, "ESC")
    yield
    panel = {**viewport, "region": next(region for region in viewport["area"].regions if region.type == "HUD")}
    press(panel, "LEFTMOUSE")
    for _ in range(3):
        yield
    hud = next(region for region in viewport["area"].regions if region.type == "HUD")
    x = hud.x + hud.width * 3 // 4
    window_manager = bpy.context.window_manager
    for y in range(hud.y + hud.height, hud.y, -5):
        window_manager.clipboard = ""
        press(panel, "C", at=(x, y), ctrl=True)
        yield
        if window_manager.clipboard == shown:
            break
    else:
        raise AssertionError(f"no field of the redo panel shows {shown!r}")
    window_manager.clipboard = value
    press(panel, "V", at=(x, y), ctrl=True)
    for _ in range(3):
        yield


def part_car_fields() -> dict:
    """The wheel objects, and the material slots of the last imported car."""
    cars = [obj for obj in bpy.data.objects if obj.name.startswith("car_") and "ganverse3d_wheel" not in obj]
    last = max(cars, key=lambda obj: obj.name, default=None)
    return {"wheels": sorted(obj.name for obj in bpy.data.objects if "ganverse3d_wheel" in obj),
            "slots": [material.name for material in last.data.materials] if last else [],
            "car_count": len(cars)}


def part_car_steps(photo: str, part_car_python: str):
    bpy.context.preferences.addons[ADDON].preferences.python = part_car_python
    for step in ("part_car_invoke", "part_car_invoke_again"):
        cars_before = len([obj for obj in bpy.data.objects if obj.name.startswith("car_")])
        with bpy.context.temp_override(**viewport_context()):
            bpy.ops.ganverse3d.import_photo("INVOKE_DEFAULT", True, filepath=photo, length=4.0)
        yield from wait_for_import(cars_before)
        emit(step, **part_car_fields())
        if step == "part_car_invoke":
            with bpy.context.temp_override(**viewport_context()):
                result = bpy.ops.ed.undo()
            emit("part_car_undo", result=sorted(result), **part_car_fields())
            yield

    result = adjust_last_operation(separate_wheels=False)
    emit("part_car_adjusted", result=sorted(result), **part_car_fields())
    yield


def undo_after_file_browser_steps(photo: str, backend_python: str):
    bpy.context.preferences.addons[ADDON].preferences.python = backend_python
    yield from import_from_file_browser(photo, length=2.5)
    emit("file_browser_again")
    cars_before = car_count()
    with bpy.context.temp_override(**viewport_context()):
        bpy.ops.ganverse3d.import_photo("INVOKE_DEFAULT", True, filepath=photo, length=3.5)
    yield from wait_for_import(cars_before)
    emit("invoke_after_file_browser")
    yield from adjust_in_redo_panel("3.5 m", "4.5")
    emit("adjusted_after_file_browser")
    for step in ("undo_adjusted", "undo_file_browser"):
        with bpy.context.temp_override(**viewport_context()):
            result = bpy.ops.ed.undo()
        emit(step, result=sorted(result))
        yield


def steps(photo: str, backend_python: str, part_car_python: str):
    """The scenario as a generator: each ``yield`` hands control back to Blender's event loop for 0.1 s."""
    status = bpy.context.window_manager.ganverse3d
    with bpy.context.temp_override(**viewport_context()):
        result = bpy.ops.ganverse3d.import_photo("INVOKE_DEFAULT", True, filepath=photo, length=4.0)
    yield from wait_for_import(cars_before=0)
    emit("invoke", result=sorted(result), status=status.import_status, last_sidebar_draw=sidebar_draws[-1][::2])

    result = adjust_last_operation(length=5.0, quality="BEST", texture_size="2048")
    emit("redo", result=sorted(result), last=bpy.context.window_manager.operators[-1].bl_idname)
    yield

    with bpy.context.temp_override(**viewport_context()):
        bpy.ops.screen.repeat_last("EXEC_DEFAULT", True)  # True: with its undo step, as Shift+R (adjust_last_operation)
    emit("repeat")
    yield

    with bpy.context.temp_override(**viewport_context()):
        results = [sorted(bpy.ops.ganverse3d.import_photo("EXEC_DEFAULT", True, filepath=photo, length=3.0))
                   for _ in range(2)]
    emit("script", results=results)
    yield

    yield from import_from_file_browser(photo, length=2.0)
    emit("file_browser", photo_field=bpy.context.scene.ganverse3d.photo, status=status.import_status)

    bpy.ops.screen.userpref_show()
    yield
    preferences = next(window for window in bpy.context.window_manager.windows
                       if window.screen.areas[0].type == "PREFERENCES")
    area = preferences.screen.areas[0]
    with bpy.context.temp_override(window=preferences, area=area,
                                   region=next(region for region in area.regions if region.type == "WINDOW")):
        bpy.ops.ganverse3d.check_backend("INVOKE_DEFAULT")
    deadline = time.monotonic() + MODAL_TIMEOUT_S
    while not status.backend and time.monotonic() < deadline:
        yield
    for _ in range(3):
        yield
    emit("check_from_preferences", status=status.backend, last_sidebar_draw=sidebar_draws[-1])
    yield from part_car_steps(photo, part_car_python)
    yield from undo_after_file_browser_steps(photo, backend_python)


def exit_on_error(step: str) -> None:
    """Print the exception being handled (a STEP line named ``step`` for the test, the traceback on stderr) and
    end Blender with exit status 1 now: ``wm.quit_blender`` would exit 0, and only after the event loop's turn."""
    error = sys.exc_info()[1]
    try:
        traceback.print_exc()
        emit(step, message=f"{type(error).__name__}: {error}")
    finally:  # even when the scene cannot be read for the STEP line
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def main() -> None:
    backend_python, photo, part_car_python = sys.argv[sys.argv.index("--") + 1:]
    sys.path.insert(0, str(ROOT / "blender_addon"))
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    bpy.context.preferences.addons[ADDON].preferences.python = backend_python
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    viewport_context()["area"].spaces.active.show_region_ui = True
    bpy.types.SpaceView3D.draw_handler_add(record_sidebar_draw, (), "UI", "POST_PIXEL")
    scenario, finished = steps(photo, backend_python, part_car_python), object()

    def tick():
        try:
            if next(scenario, finished) is not finished:
                return 0.1
            sys.stdout.flush()
            with bpy.context.temp_override(window=bpy.context.window_manager.windows[0]):
                bpy.ops.wm.quit_blender()
        except Exception:  # noqa: BLE001  (any failure of a step, or of the quit, ends the run with its traceback)
            exit_on_error("error")
        return None

    bpy.app.timers.register(tick, first_interval=0.5)


try:
    main()
except Exception:  # noqa: BLE001  (Blender would print it and keep its window open)
    exit_on_error("setup_error")
