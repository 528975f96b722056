"""The Neural Preview: StyleGAN-R re-renders an imported car from the scene camera while the camera moves.

A :class:`Preview` lives while the preview is on. A ``bpy.app.timers`` function (:func:`_tick`, every
:data:`INTERVAL_S`) drives it on Blender's main thread and never waits: it polls the request in flight, and
when none is, compares what the panel and the scene ask for now (car, scene camera, background, swap, model)
with what was rendered last and sends the worker one new request if they differ. Polling the camera, rather
than depsgraph or frame-change handlers, covers every way it moves (a drag, a driver, playback, a moved car)
with one mechanism, and a handler can never fire a request while one is in flight.

At most one request is in flight, so the newest camera wins: cameras seen while waiting are not queued; the
one current when the reply arrives is sent next. A reply is applied only if it renders the scene the preview
still shows (same car, reconstruction, background, swap and model, same preview session); anything else is a
stale reply and is dropped. A reply for an older camera of the same scene is shown: during playback every
reply is a frame behind, and dropping those would freeze the preview while the camera moves.

The image goes into the Image datablock "<car> Neural Preview" (shown by an Image Editor that shows nothing
else, and in a corner of every 3D viewport by a ``gpu`` draw handler that exists only while the preview is
on). A failed request (a dead worker, a car the backend no longer holds) stops the preview with the one
sentence it failed with, on the preview's status line.
"""

import shutil
import tempfile
from array import array

import bpy

from . import session, status
from .scene_build import RECONSTRUCTION_PROPERTY

INTERVAL_S = 1 / 30
IMAGE_SUFFIX = " Neural Preview"
STATUS_LINE = "preview_status"
# Side of the viewport overlay in pixels at UI scale 1 (the model renders 64 px; larger only blurs).
OVERLAY_SIDE_PX = 192
OVERLAY_MARGIN_PX = 16
SWAP_PARTS = ("shape", "texture", "background")

_preview = None


class PreviewError(Exception):
    """The preview cannot go on; the message is one sentence naming the setting to change."""


def image_name(car_name: str) -> str:
    return car_name + IMAGE_SUFFIX


def has_reconstruction(obj) -> bool:
    return obj is not None and obj.type == "MESH" and RECONSTRUCTION_PROPERTY in obj


def camera_request(scene, camera, car) -> dict:
    """The Blender form of a ``neural_render`` camera (see ``ganverse3d.worker``): the camera object's and the
    car's world matrices, the lens and sensor, and the frame's shape (pixels times pixel aspect)."""
    data, render = camera.data, scene.render
    return {"matrix_world": [list(row) for row in camera.matrix_world],
            "car_matrix_world": [list(row) for row in car.matrix_world],
            "lens": data.lens, "sensor_width": data.sensor_width, "sensor_height": data.sensor_height,
            "sensor_fit": data.sensor_fit,
            "resolution": [render.resolution_x * render.pixel_aspect_x, render.resolution_y * render.pixel_aspect_y]}


def wanted(context) -> tuple[tuple, dict, tuple | None]:
    """What the preview should show now: (scene key, neural_render arguments without reconstruction and out_dir,
    swap (car id, other id, parts) or None). Raises PreviewError for a setting that makes it impossible."""
    scene = context.scene
    settings = scene.ganverse3d.preview
    car = settings.car
    if not has_reconstruction(car):
        raise PreviewError("Choose a Car imported from a photo in the Neural Preview's Car field.")
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        raise PreviewError("The scene has no camera; set one in the Scene properties to preview from it.")
    if camera.data.type != "PERSP":
        raise PreviewError(f"The scene camera {camera.name} is not a perspective camera; set its Type to "
                           f"Perspective.")
    background = None
    if settings.background == "FILE":
        if not settings.background_photo:
            raise PreviewError("Choose a Background Photo, or set Background to the car's photo.")
        background = bpy.path.abspath(settings.background_photo)
    swap = None
    parts = tuple(part for part in SWAP_PARTS if getattr(settings, f"swap_{part}"))
    if settings.swap_with is not None and parts:
        if not has_reconstruction(settings.swap_with):
            raise PreviewError("Swap With must be another car imported from a photo.")
        swap = (car[RECONSTRUCTION_PROPERTY], settings.swap_with[RECONSTRUCTION_PROPERTY], parts)
    preferences = session.addon_preferences(context)
    neural_model = bpy.path.abspath(preferences.neural_model) if preferences.neural_model else None
    key = (car.name, car[RECONSTRUCTION_PROPERTY], swap, background, neural_model)
    arguments = {"camera": camera_request(scene, camera, car), "background": background, "neural_model": neural_model}
    return key, arguments, swap


class Preview:
    """One run of the preview: what was sent and shown, the swaps the worker made, a folder for its images."""

    def __init__(self, previous=None):
        # A request that a stopped preview left in flight is adopted (its reply dropped), with the folder the
        # worker writes it into: waiting for it here would block Blender.
        self.request = previous.request if previous is not None else None
        self.sent = None  # (scene key, arguments) of the neural_render in flight
        self.sent_swap = None  # the swap in flight
        self.shown = None  # (scene key, arguments) of the image shown
        self.swapped = {}  # swap (car id, other id, parts) -> the worker's id of the swapped reconstruction
        self.out_dir = previous.out_dir if previous is not None else tempfile.mkdtemp(prefix="ganverse3d_preview_")
        self.active = True
        self.error = None
        self.draw_handler = None

    def tick(self, context) -> float | None:
        """One step (see the module docstring); the seconds until the next, or None when it is over."""
        if self.request is not None:
            if not self.request.poll():
                return INTERVAL_S
            self._answered(context)
        if not self.active:  # stopped: only the request in flight was left to finish
            self._release()
            return None
        try:
            key, arguments, swap = wanted(context)
        except (PreviewError, session.AddonNotEnabled) as error:
            stop(context, str(error), failed=True)
            return None
        if self.active and self.request is None and (key, arguments) != self.shown:
            client = session.worker_client(context)
            if not client.busy:  # an import may be running: wait for it
                self._send(client, key, arguments, swap)
        return INTERVAL_S

    def _send(self, client, key, arguments, swap) -> None:
        if swap is not None and swap not in self.swapped:
            car_id, other_id, parts = swap
            self.request, self.sent, self.sent_swap = client.request("swap", reconstruction=car_id, other=other_id,
                                                                     parts=list(parts)), None, swap
            return
        reconstruction = self.swapped[swap] if swap is not None else key[1]
        self.request = client.request("neural_render", reconstruction=reconstruction, out_dir=self.out_dir,
                                      **arguments)
        self.sent, self.sent_swap = (key, arguments), None

    def _answered(self, context) -> None:
        request, sent, sent_swap = self.request, self.sent, self.sent_swap
        self.request = self.sent = self.sent_swap = None
        if not self.active or (sent is None and sent_swap is None):
            return  # stopped meanwhile, or the reply of an earlier preview's request
        if request.error:
            stop(context, request.error, failed=True)
            return
        if sent_swap is not None:
            self.swapped[sent_swap] = str(request.result["reconstruction"])
            return
        try:
            current = wanted(context)[0]
        except (PreviewError, session.AddonNotEnabled):
            return  # the next tick stops the preview with the reason
        if sent[0] != current:
            return  # a stale reply: another car, background, swap or model by now
        show_image(context, sent[0][0], request.result["image"])
        self.shown = sent
        camera = request.result.get("camera", {})
        off_axis = float(camera.get("off_axis", 0.0))
        aim = f"; the camera aims {off_axis:.0f} degrees away from the car's centre" if off_axis >= 1 else ""
        status.show(context, STATUS_LINE, f"Previewing {sent[0][0]} from azimuth {camera.get('azimuth', 0):.0f}, "
                                          f"elevation {camera.get('elevation', 0):.0f} degrees{aim}.")

    def _release(self) -> None:
        shutil.rmtree(self.out_dir, ignore_errors=True)


def show_image(context, car_name: str, path: str):
    """Copy the PNG at ``path`` into the Image "<car> Neural Preview" (made on first use and shown by every
    Image Editor that shows no image). The pixels are copied at once: the worker writes the next image to the
    same file."""
    loaded = bpy.data.images.load(path, check_existing=False)
    try:
        width, height = loaded.size
        pixels = array("f", bytes(4 * width * height * 4))
        loaded.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(loaded)
    name = image_name(car_name)
    image = bpy.data.images.get(name)
    if image is not None and tuple(image.size) != (width, height):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = bpy.data.images.new(name, width, height)
        for window in context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == "IMAGE_EDITOR" and area.spaces.active.image is None:
                    area.spaces.active.image = image
    image.pixels.foreach_set(pixels)
    image.update()
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "IMAGE_EDITOR"):
                area.tag_redraw()
    return image


def _draw_overlay() -> None:
    """Draw the preview's image in the bottom-left corner of the 3D viewport being drawn."""
    import gpu
    from gpu_extras.presets import draw_texture_2d

    preview = _preview
    context = bpy.context
    car = context.scene.ganverse3d.preview.car if preview is not None else None
    image = bpy.data.images.get(image_name(car.name)) if car is not None else None
    if image is None:
        return
    scale = context.preferences.system.ui_scale
    side = min(OVERLAY_SIDE_PX * scale, context.region.width / 3, context.region.height / 3)
    draw_texture_2d(gpu.texture.from_image(image), (OVERLAY_MARGIN_PX * scale, OVERLAY_MARGIN_PX * scale), side, side)


def running() -> bool:
    return _preview is not None and _preview.active


def last_error() -> str | None:
    """The sentence the last preview stopped with, when it failed."""
    return _preview.error if _preview is not None else None


def _tick():
    preview = _preview
    if preview is None:
        return None
    return preview.tick(bpy.context)


def start(context) -> None:
    """Turn the preview on (PreviewError with the reason when it cannot start); the Car defaults to the active
    object when it is an imported car."""
    global _preview
    if running():
        return
    settings = context.scene.ganverse3d.preview
    if settings.car is None and has_reconstruction(context.active_object):
        settings.car = context.active_object
    wanted(context)  # a setting that makes the preview impossible is said now, not by the first tick
    previous = _preview if _preview is not None and _preview.request is not None else None
    _preview = Preview(previous)
    _preview.draw_handler = bpy.types.SpaceView3D.draw_handler_add(_draw_overlay, (), "WINDOW", "POST_PIXEL")
    if not bpy.app.timers.is_registered(_tick):
        # Persistent: a request in flight when another file is opened must still be finished (see stop_on_load).
        bpy.app.timers.register(_tick, first_interval=0.0, persistent=True)
    status.show(context, STATUS_LINE, "Starting the Neural Preview...")


def stop(context, sentence: str = "", failed: bool = False) -> None:
    """Turn the preview off: no more requests, the overlay removed; a request in flight is let finish (killing
    the worker would lose every car it holds) and its reply dropped."""
    preview = _preview
    if preview is None or not preview.active:
        return
    preview.active = False
    preview.error = sentence if failed else None
    if preview.draw_handler is not None:
        bpy.types.SpaceView3D.draw_handler_remove(preview.draw_handler, "WINDOW")
        preview.draw_handler = None
    if preview.request is None:
        preview._release()
        if bpy.app.timers.is_registered(_tick):
            bpy.app.timers.unregister(_tick)
    status.show(context, STATUS_LINE, sentence, failed)
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def shutdown() -> None:
    """Stop everything at unregister: the timer, the overlay, the folder (the worker is closed after this)."""
    global _preview
    preview = _preview
    if preview is not None:
        if preview.draw_handler is not None:
            bpy.types.SpaceView3D.draw_handler_remove(preview.draw_handler, "WINDOW")
        preview._release()
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    _preview = None


@bpy.app.handlers.persistent
def stop_on_load(*_):
    """Another .blend replaces the scene the preview follows: stop it."""
    if running():
        stop(bpy.context, "The Neural Preview stopped: another file was opened.")
