"""Operators that talk to the backend worker: Check Backend, Import Car from Photo and the Neural Preview toggle.

Both run one worker request through :class:`WorkerRequestOperator`, in one of two ways:

* ``invoke()`` (a button, the operator search): modal, polled by a timer; Blender stays responsive, the status
  bar shows progress, Esc cancels. In background mode, which has no event loop, it runs as ``execute()`` does.
* ``execute()`` (a script, Adjust Last Operation, Repeat Last): waits for the answer and returns with the
  work done. Blender redoes an operator by undoing its step and calling ``execute()`` on an
  operator it frees right after; a modal run started there would outlive it and crash Blender.
"""

import json
import math
import os
import shutil
import tempfile
import time
import traceback

import bpy

from . import preview, scene_build, session, status, wheels

# How often the modal operator looks at the worker's answers (seconds).
_POLL_INTERVAL = 0.1
_BUSY = "The backend is busy; wait for the running request or press Esc to cancel it."
_PHOTO_EXTENSIONS = ("*.png", "*.jpg", "*.jpeg", "*.bmp", "*.tif", "*.tiff", "*.webp")

# The import options, shared by the operator and the panel's settings (GANVERSE3D_PG_import_settings).
PHOTO = bpy.props.StringProperty(name="Photo", description="Photo of one car", subtype="FILE_PATH")
MASK = bpy.props.StringProperty(name="Mask", subtype="FILE_PATH",
                                description="Optional image of the photo's size, white where the car is; empty = "
                                            "the photo's alpha channel, or else the backend finds the car itself")
LENGTH = bpy.props.FloatProperty(name="Length", description="Real-world length of the car (metres)",
                                 default=4.5, min=0.5, soft_max=10.0, subtype="DISTANCE", unit="LENGTH")
CREATE_CAMERA = bpy.props.BoolProperty(name="Create Matching Camera", default=True,
                                       description="Add a camera that sees the car as the photo does and make it "
                                                   "the scene camera; the render resolution becomes square, as the "
                                                   "framed photo is (keeping its larger side). Off: the render "
                                                   "resolution is left as it is")
PHOTO_BACKGROUND = bpy.props.BoolProperty(name="Photo as Camera Background", default=True,
                                          description="Show the framed photo behind the car in the camera view")
PART_MATERIALS = bpy.props.BoolProperty(name="Part Materials", default=True,
                                        description="With a backend that labels the car's parts: painted body, "
                                                    "tinted glass, head- and taillights lit by the car's Lights "
                                                    "property, plate and tyres, one material each. Off: one "
                                                    "material with the texture")
SEPARATE_WHEELS = bpy.props.BoolProperty(name="Separate Wheels", default=True,
                                         description="With a backend that finds the wheels: four wheel objects "
                                                     "parented to the car, pivots at their hubs, turned by the "
                                                     "car's Speed, Distance and Steer properties. Off: the wheels "
                                                     "are part of the car's mesh")
# The worker's quality presets (ganverse3d.api.QUALITIES, which the add-on cannot import: it never loads the
# backend) by name: fitting steps, texture height (0 = the network's 64 x 32 texture; a baked one is twice as
# wide as high, written width x height as Blender writes image sizes) and what a warm reconstruction of
# docs/example_car.png took on one CPU core. tests/blender_addon pins names and numbers to api.QUALITIES.
QUALITIES = {"fast": (0, 0, "well under a second"), "balanced": (50, 1024, "about 10 s"),
             "best": (200, 2048, "about 20 s")}
DEFAULT_QUALITY = "fast"  # api.DEFAULT_QUALITY: the worker's own default
TEXTURE_SIZES = (512, 1024, 2048, 4096)  # api.MIN_TEXTURE_SIZE .. api.MAX_TEXTURE_SIZE, in powers of two


def _quality_description(fit_steps: int, texture_size: int, cost: str) -> str:
    fitting = (f"{fit_steps} steps of fitting mesh, proportions and camera to the photo" if fit_steps else
               "The network's prediction, no fitting")
    texture = (f"the photo baked into a {2 * texture_size} x {texture_size} texture" if texture_size else
               "its 64 x 32 texture")
    return f"{fitting}, {texture}: {cost} on a CPU"


QUALITY = bpy.props.EnumProperty(
    name="Quality",
    description="How hard the backend works on the car: fitting it to the photo and baking the photo into its "
                "texture take longer and follow the photo more closely",
    items=[(name.upper(), name.title(), _quality_description(*preset)) for name, preset in QUALITIES.items()],
    default=DEFAULT_QUALITY.upper())
TEXTURE_SIZE = bpy.props.EnumProperty(
    name="Texture Size",
    description="Height in pixels of the texture baked from the photo (it is twice as wide)",
    items=[("AUTO", "Auto", "The Quality's: " + ", ".join(
               (f"{2 * size} x {size}" if size else "the network's 64 x 32") + f" for {name.title()}"
               for name, (_, size, _) in QUALITIES.items()))]
          + [(str(size), str(size), f"The photo baked into a {2 * size} x {size} texture, whatever the Quality")
             for size in TEXTURE_SIZES],
    default="AUTO")
# The panel's settings (GANVERSE3D_PG_import_settings) -> the import operator's properties that they set.
IMPORT_OPTIONS = {"photo": "filepath", "mask": "mask", "length": "length", "quality": "quality",
                  "texture_size": "texture_size", "create_camera": "create_camera",
                  "photo_background": "photo_background", "part_materials": "part_materials",
                  "separate_wheels": "separate_wheels"}


def _status_bar(context, text: str | None) -> None:
    """Show ``text`` in the status bar (None restores the normal one)."""
    if context.workspace is not None:
        context.workspace.status_text_set(text)


class WorkerRequestOperator:
    """Mixin: send one worker request and finish when it is answered, waiting (``execute``) or modal (``invoke``).

    Subclasses implement ``send(context)`` -> Request or None (after reporting why not) and ``finish(context,
    request)`` -> operator return set, and name in ``status_line`` their line of :mod:`status` ("backend" or
    "import_status", shown in the preferences or the panel).
    """

    status_line = ""

    @classmethod
    def poll(cls, context):
        if session.worker_busy():
            cls.poll_message_set(_BUSY)
            return False
        return True

    def execute(self, context):
        request = self.start(context)
        if request is None:
            return {"CANCELLED"}
        request.wait()
        return self.finish(context, request)

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        request = self.start(context)
        if request is None:
            return {"CANCELLED"}
        self._request = request
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(_POLL_INTERVAL, window=context.window)
        window_manager.modal_handler_add(self)
        window_manager.progress_begin(0, 100)
        self.show_status(context, "Starting the backend...")
        _status_bar(context, f"{self.bl_label}: starting the backend - Esc cancels")
        return {"RUNNING_MODAL"}

    def start(self, context):
        """Send the request (None after reporting why not)."""
        try:
            return self.send(context)
        except session.AddonNotEnabled as error:
            self.fail(context, str(error))
            return None

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            session.cancel_worker()
            self._end_modal(context)
            self.cleanup()
            self.show_status(context, "Cancelled.")
            self.report({"WARNING"}, f"{self.bl_label} cancelled.")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        request = self._request
        if not request.poll():
            context.window_manager.progress_update(round(100 * request.progress))
            if request.message:
                progress = f"{request.message} ({request.progress:.0%})"
                self.show_status(context, progress)
                _status_bar(context, f"{self.bl_label}: {progress} - Esc cancels")
            return {"RUNNING_MODAL"}
        self._end_modal(context)
        return self.finish(context, request)

    def _end_modal(self, context) -> None:
        window_manager = context.window_manager
        window_manager.event_timer_remove(self._timer)
        window_manager.progress_end()
        _status_bar(context, None)
        status.redraw(context)  # the backend is idle again: the buttons' poll changes

    def show_status(self, context, text: str, failed: bool = False) -> None:
        status.show(context, self.status_line, text, failed)

    def fail(self, context, sentence: str):
        self.cleanup()
        self.show_status(context, sentence, failed=True)
        self.report({"ERROR"}, sentence)
        return {"CANCELLED"}

    def cleanup(self) -> None:
        """Release what ``send`` set up (called on failure and cancel; ``finish`` calls it itself)."""


class GANVERSE3D_OT_check_backend(WorkerRequestOperator, bpy.types.Operator):
    """Start the backend with the current preferences and report its versions, device and model"""

    bl_idname = "ganverse3d.check_backend"
    bl_label = "Check Backend"
    status_line = "backend"

    def send(self, context):
        return session.worker_client(context).request("hello")

    def finish(self, context, request):
        if request.error:
            return self.fail(context, request.error)
        summary = str(request.result.get("summary", "The backend answered without a summary."))
        self.show_status(context, summary)
        self.report({"INFO"}, summary)
        return {"FINISHED"}


class GANVERSE3D_OT_import_photo(WorkerRequestOperator, bpy.types.Operator):
    """Reconstruct the car in a photo as a textured mesh, with a camera that sees it as the photo does.

    Each import goes into a collection of its own, named after the photo (one undo step removes it all). With
    Create Matching Camera the render resolution takes the framed photo's aspect, keeping the larger of its
    width and height: the worker frames the car in a square crop of the photo and returns a camera whose
    vertical field of view spans that crop (sensor_fit VERTICAL), so in a 1920 x 1080 frame the camera would see
    past the photo's sides and the render would not be the photo's framing; a square frame shows exactly what
    the framed photo shows. The resolution is the scene's, shared by all its cameras, so it changes only with
    the camera the import makes the scene camera: an import without a camera leaves the scene's render alone.
    """

    bl_idname = "ganverse3d.import_photo"
    bl_label = "Import Car from Photo"
    bl_description = ("Reconstruct the car in a photo as a textured mesh, with a camera that sees it as the photo "
                      "does; with that camera the render resolution takes the framed photo's (square) aspect, "
                      "without it the render is left as it is")
    bl_options = {"REGISTER", "UNDO"}
    status_line = "import_status"

    filepath: PHOTO
    filter_glob: bpy.props.StringProperty(default=";".join(_PHOTO_EXTENSIONS), options={"HIDDEN"})
    mask: MASK
    length: LENGTH
    quality: QUALITY
    texture_size: TEXTURE_SIZE
    create_camera: CREATE_CAMERA
    photo_background: PHOTO_BACKGROUND
    part_materials: PART_MATERIALS
    separate_wheels: SEPARATE_WHEELS

    _choosing_photo = False  # True between invoke() opening the file browser and its execute()

    def invoke(self, context, event):
        if not self.filepath:
            self._choosing_photo = True
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return super().invoke(context, event)

    def execute(self, context):
        if self._choosing_photo:
            return self.import_chosen_photo(context)
        return super().execute(context)

    def import_chosen_photo(self, context):
        """After the file browser: put the photo in the panel's Photo field and import it as its button does.

        The file browser calls execute() and records the undo step as soon as it returns, so the import runs as
        an operator of its own, invoked (modal, responsive), with its own undo step and Adjust Last Operation.
        """
        self._choosing_photo = False
        context.scene.ganverse3d.photo = self.filepath
        if session.worker_busy():  # something started while the file browser was open
            return self.fail(context, _BUSY)
        options = {option: getattr(self, option) for option in IMPORT_OPTIONS.values()}
        try:
            bpy.ops.ganverse3d.import_photo("INVOKE_DEFAULT", **options)
        except RuntimeError:
            pass  # the import could not start and has said why (status line and report)
        return {"CANCELLED"}  # this operator only chose the photo: nothing to undo or repeat

    def send(self, context):
        if not self.filepath:
            self.fail(context, "Choose a photo of a car first.")
            return None
        photo = bpy.path.abspath(self.filepath)
        if not os.path.isfile(photo):
            self.fail(context, f"The photo {photo} does not exist.")
            return None
        mask = bpy.path.abspath(self.mask) if self.mask else None
        if mask is not None and not os.path.isfile(mask):
            self.fail(context, f"The mask {mask} does not exist.")
            return None
        self._photo = photo
        self._started = time.monotonic()
        self._out_dir = tempfile.mkdtemp(prefix="ganverse3d_import_")
        # texture_size None: the quality's; fit_steps left out: the quality's too (the panel does not set it).
        texture_size = None if self.texture_size == "AUTO" else int(self.texture_size)
        self._arguments = {"photo": photo, "mask": mask, "length": self.length, "quality": self.quality.lower(),
                           "texture_size": texture_size}
        return session.worker_client(context).request("reconstruct", out_dir=self._out_dir, **self._arguments)

    def cleanup(self):
        out_dir = getattr(self, "_out_dir", None)
        if out_dir:
            shutil.rmtree(out_dir, ignore_errors=True)  # images are packed into the .blend before this runs
            self._out_dir = None

    def finish(self, context, request):
        if request.error:
            return self.fail(context, request.error)
        try:
            car, camera = scene_build.build_car(context, request.result, self._photo, self.create_camera,
                                                self.photo_background, self.part_materials, self.separate_wheels)
            # A worker started later (another session, a headless turntable) makes the same car from these.
            car[scene_build.REQUEST_PROPERTY] = json.dumps(self._arguments)
        except scene_build.BuildError as error:
            return self.fail(context, str(error))
        except Exception as error:  # a bug: the scene is already rolled back; the console gets the traceback
            traceback.print_exc()
            return self.fail(context, f"Building the car failed: {type(error).__name__}: {error}.")
        self.cleanup()
        seconds = time.monotonic() - self._started
        with_camera = f" and {camera.name}" if camera else ""
        message = f"Imported {car.name}{with_camera} ({self.length:.2f} m long) in {seconds:.1f} s."
        self.show_status(context, message)
        self.report({"INFO"}, message)
        return {"FINISHED"}


class GANVERSE3D_OT_bake_wheel_rotation(bpy.types.Operator):
    """Keyframe the selected car's Distance (and Steer) on every frame from its motion, so its wheels roll and
    steer as it moves.

    The car's world-space travel between frames along its forward direction (-Y of its world matrix) is added
    up; a path, a Follow Path constraint, a parent or keyframes all move it alike. Speed adds to this, so it
    should be 0 on a car that moves. Steer follows how the car's heading turns per metre (wheels.bake_steer).
    """

    bl_idname = "ganverse3d.bake_wheel_rotation"
    bl_label = "Bake Wheel Rotation"
    bl_description = ("Keyframe the car's Distance, and its Steer, on every frame of the scene from the car's "
                      "motion, so that its wheels roll and steer as it moves along its path (replaces their "
                      "keyframes)")
    bl_options = {"REGISTER", "UNDO"}

    bake_steer: bpy.props.BoolProperty(
        name="Bake Steer", default=True,
        description="Also keyframe Steer from how the car turns as it travels: the front wheels point along the "
                    "curve it drives (its wheelbase times the curve's curvature, within Steer's soft limits)")

    @classmethod
    def poll(cls, context):
        if wheels.rigged_car(context.active_object) is None:
            cls.poll_message_set("Select a car imported with Separate Wheels.")
            return False
        return True

    def execute(self, context):
        car = wheels.rigged_car(context.active_object)
        wheelbase = wheels.wheelbase(car) if self.bake_steer else None
        if self.bake_steer and wheelbase is None:
            self.report({"ERROR"}, f"{car.name} has no front and rear wheel objects to measure its wheelbase "
                                   f"from; turn Bake Steer off, or import the car again with Separate Wheels.")
            return {"CANCELLED"}
        track = wheels.car_track(context.scene, car)
        keys = wheels.bake_distance(car, track)
        message = f"Baked {car.name}'s Distance on frames {keys[0][0]}-{keys[-1][0]}: {keys[-1][1]:.2f} m"
        if self.bake_steer:
            steers = [steer for _, steer in wheels.bake_steer(car, track, wheelbase)]
            message += (f", and its Steer: {math.degrees(min(steers)):.1f}\N{DEGREE SIGN} to "
                        f"{math.degrees(max(steers)):.1f}\N{DEGREE SIGN} (wheelbase {wheelbase:.2f} m)")
        message += "."
        if car["Speed"]:
            message += " Its Speed is not 0, so its wheels turn faster than it moves."
        self.report({"WARNING"} if car["Speed"] else {"INFO"}, message)
        return {"FINISHED"}


class GANVERSE3D_OT_neural_preview(bpy.types.Operator):
    """Turn the Neural Preview on or off: StyleGAN-R renders the car from the scene camera whenever it moves.

    On, it runs as a modal operator that lets every event through and only listens for Esc, which stops the
    preview; the rendering itself is driven by a timer (``preview``), so the preview also runs where no modal
    operator can (a script, background mode).
    """

    bl_idname = "ganverse3d.neural_preview"
    bl_label = "Neural Preview"
    bl_description = ("StyleGAN-R renders the Car from the scene camera while the camera moves or the animation "
                      "plays, into the image '<car> Neural Preview' and a corner of the 3D viewport; Esc stops it")

    def execute(self, context):
        if preview.running():
            preview.stop(context, "The Neural Preview is off.")
            return {"FINISHED"}
        try:
            preview.start(context)
        except (preview.PreviewError, session.AddonNotEnabled) as error:
            status.show(context, preview.STATUS_LINE, str(error), failed=True)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return {"FINISHED"}

    def invoke(self, context, event):
        result = self.execute(context)
        if preview.running() and not bpy.app.background:
            context.window_manager.modal_handler_add(self)
            return {"RUNNING_MODAL"}
        return result

    def modal(self, context, event):
        if not preview.running():  # toggled off, or stopped by a failure, which is reported here once
            if preview.last_error():
                self.report({"ERROR"}, preview.last_error())
            return {"CANCELLED", "PASS_THROUGH"}
        if event.type == "ESC" and event.value == "PRESS":
            preview.stop(context, "The Neural Preview stopped (Esc).")
            return {"CANCELLED"}
        return {"PASS_THROUGH"}
