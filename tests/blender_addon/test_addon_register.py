"""Registering the add-on: everything it adds to Blender goes away on unregister, it registers again, and it
never imports torch, numpy or the backend (it talks to the backend only through the worker protocol)."""

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import bpy
import addon_utils  # Blender's own module: importable once bpy is
import pytest

import ganverse3d_blender
from ganverse3d import api
from ganverse3d.worker import addon_setting

ADDON = "ganverse3d_blender"
PACKAGE_DIR = Path(ganverse3d_blender.__file__).parent
CLASS_NAMES = [cls.__name__ for cls in ganverse3d_blender.CLASSES]
BLENDER_BASES = (bpy.types.PropertyGroup, bpy.types.AddonPreferences, bpy.types.Operator, bpy.types.Panel)
OPERATORS = ("import_photo", "check_backend", "bake_wheel_rotation", "neural_preview")


def operator_registered(name: str) -> bool:
    try:
        getattr(bpy.ops.ganverse3d, name).get_rna_type()
        return True
    except KeyError:
        return False


def registered_traces() -> dict:
    """Everything the add-on could leave behind, as booleans."""
    # By name in Blender's registry: addon_utils may reload the module, making new class objects.
    traces = {f"class {name}": any(base.bl_rna_get_subclass_py(name) for base in BLENDER_BASES)
              for name in CLASS_NAMES}
    traces.update({f"operator {name}": operator_registered(name) for name in OPERATORS})
    traces["Scene.ganverse3d"] = "ganverse3d" in bpy.types.Scene.bl_rna.properties
    traces["WindowManager.ganverse3d"] = "ganverse3d" in bpy.types.WindowManager.bl_rna.properties
    traces["preferences"] = ADDON in bpy.context.preferences.addons
    return traces


def test_classes_are_the_panel_operators_preferences_and_property_groups():
    assert CLASS_NAMES == ["GANVERSE3D_PG_preview_settings", "GANVERSE3D_PG_import_settings", "GANVERSE3D_PG_status",
                           "GANVERSE3D_AddonPreferences", "GANVERSE3D_OT_check_backend", "GANVERSE3D_OT_import_photo",
                           "GANVERSE3D_OT_bake_wheel_rotation", "GANVERSE3D_OT_neural_preview",
                           "GANVERSE3D_PT_import", "GANVERSE3D_PT_car_rig", "GANVERSE3D_PT_neural_preview"]


def test_register_adds_everything_and_unregister_leaves_no_trace():
    assert not any(registered_traces().values()), "nothing may be registered before the test"
    for _ in range(2):  # registering again after unregistering works
        addon_utils.enable(ADDON, default_set=True, handle_error=None)
        try:
            assert all(registered_traces().values()), registered_traces()
            preferences = bpy.context.preferences.addons[ADDON].preferences
            assert (preferences.python, preferences.model, preferences.device, preferences.timeout) == \
                   ("", "", "AUTO", 300)
            settings = bpy.context.scene.ganverse3d
            assert (settings.length, settings.quality, settings.texture_size, settings.create_camera,
                    settings.photo_background, settings.part_materials, settings.separate_wheels) == \
                (4.5, "FAST", "AUTO", True, True, True, True)
            assert bpy.types.GANVERSE3D_OT_import_photo.bl_options == {"REGISTER", "UNDO"}
        finally:
            addon_utils.disable(ADDON, default_set=True, handle_error=None)
        assert not any(registered_traces().values()), registered_traces()


def imported_names(path: Path) -> set[str]:
    """Top-level names of every absolute import in a module (relative imports give none)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_addon_imports_only_blenders_modules_and_the_standard_library():
    modules = sorted(PACKAGE_DIR.glob("*.py"))
    assert len(modules) >= 6
    for module in modules:
        foreign = imported_names(module) - set(sys.stdlib_module_names) - {"bpy", "bpy_extras", "gpu", "gpu_extras",
                                                                             "__future__"}
        assert not foreign, f"{module.name} imports {sorted(foreign)}"
    assert imported_names(PACKAGE_DIR / "worker_client.py") <= set(sys.stdlib_module_names) | {"__future__"}


BLOCKED_IMPORT_SCRIPT = """
import importlib.abc, sys
import bpy, addon_utils

BLOCKED = {"torch", "numpy", "ganverse3d"}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the add-on must not import {name}")

sys.meta_path.insert(0, Blocker())
sys.path.insert(0, sys.argv[1])
addon_utils.enable("ganverse3d_blender", default_set=True, handle_error=None)
assert "ganverse3d_blender" in bpy.context.preferences.addons
bpy.ops.ganverse3d.import_photo.get_rna_type()
addon_utils.disable("ganverse3d_blender", default_set=True, handle_error=None)
print("registered without", sorted(BLOCKED & set(sys.modules)))
"""


def test_the_addon_registers_where_torch_numpy_and_the_backend_cannot_be_imported():
    # bpy itself may import numpy at start-up, so the blocker goes in after `import bpy`; the add-on's
    # modules, imported by addon_utils.enable, are all imported after it.
    done = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT_SCRIPT, str(PACKAGE_DIR.parent)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "registered without" in done.stdout


class RecordingLayout:
    """Stands in for a UILayout (the bpy module draws no UI): records what a draw() puts in it."""

    def __init__(self, items):
        self.items = items
        self.use_property_split = self.active = False

    def prop(self, data, name, **options):
        if name.startswith('["'):  # a custom property
            assert name[2:-2] in data, f"{data} has no custom property {name}"
        else:
            assert name in data.bl_rna.properties, f"{name} is not a property of {data}"
        self.items.append(("prop", name))

    def operator(self, idname, **options):
        self.items.append(("operator", idname))
        return OperatorButton(idname)

    def label(self, text="", icon="NONE", **options):
        self.items.append(("label", text, icon))

    def row(self, **options):
        return self

    column = row


class OperatorButton:
    """A button's operator properties: a draw() may only set ones the operator has; ``values`` records them."""

    last = None  # the button drawn last

    def __init__(self, idname):
        module, name = idname.split(".")
        object.__setattr__(self, "properties", getattr(getattr(bpy.ops, module), name).get_rna_type().properties)
        object.__setattr__(self, "values", {})
        OperatorButton.last = self

    def __setattr__(self, name, value):
        assert name in self.properties, f"the operator has no property {name}"
        self.values[name] = value


class RecordingLayoutOwner:
    """``self`` for a Panel's / AddonPreferences' draw(): a recording layout, and the preferences' properties."""

    def __init__(self, items, properties=None):
        self.layout = RecordingLayout(items)
        self._properties = properties

    def __getattr__(self, name):
        return getattr(self._properties, name)

    @property
    def bl_rna(self):
        return self._properties.bl_rna


@pytest.fixture
def enabled():
    """The add-on enabled, as its package module."""
    addon_utils.enable(ADDON, default_set=True, handle_error=None)
    try:
        yield sys.modules[ADDON]
    finally:
        addon_utils.disable(ADDON, default_set=True, handle_error=None)


def test_the_settings_have_the_names_the_backends_messages_use(enabled):
    """The worker's errors speak of "the Photo", "the Mask", "the Length", "the Quality", "the Device", ..."""
    def names(rna, identifiers):
        return [rna.properties[identifier].name for identifier in identifiers]
    panel_settings = ("photo", "mask", "length", "quality", "texture_size")
    assert names(bpy.context.scene.ganverse3d.bl_rna, panel_settings) == \
        [addon_setting(name) for name in panel_settings] == ["Photo", "Mask", "Length", "Quality", "Texture Size"]
    assert names(bpy.context.preferences.addons[ADDON].preferences.bl_rna,
                 ("python", "model", "neural_model", "device", "timeout")) == \
        ["Backend Python", "Model", "Neural Model", "Device", "Timeout"]
    assert names(bpy.context.scene.ganverse3d.preview.bl_rna, ("background",)) == [addon_setting("background")]


def enum_items(identifier: str) -> list:
    return list(bpy.context.scene.ganverse3d.bl_rna.properties[identifier].enum_items)


def test_the_quality_presets_are_the_backends(enabled):
    """The add-on cannot import ganverse3d.api (it never loads the backend), so its copy of api.QUALITIES is
    pinned here: names, fitting steps, texture sizes, default, and the descriptions that state them."""
    operators = enabled.operators
    assert {name: steps_and_size for name, (*steps_and_size, _) in operators.QUALITIES.items()} == \
        {name: [quality.fit_steps, quality.texture_size] for name, quality in api.QUALITIES.items()}
    assert operators.DEFAULT_QUALITY == api.DEFAULT_QUALITY
    items = enum_items("quality")
    assert [item.identifier.lower() for item in items] == list(api.QUALITIES)
    assert bpy.context.scene.ganverse3d.quality.lower() == api.DEFAULT_QUALITY
    for item in items:
        preset = api.QUALITIES[item.identifier.lower()]
        steps = f"{preset.fit_steps} steps of fitting" if preset.fit_steps else "no fitting"
        texture = (f"{2 * preset.texture_size} x {preset.texture_size} texture" if preset.texture_size else
                   "64 x 32 texture")
        assert steps in item.description and texture in item.description, item.description
        assert " s on a CPU" in item.description or "second on a CPU" in item.description, "and what it costs"


def test_the_texture_sizes_are_auto_or_sizes_the_backend_accepts(enabled):
    items = enum_items("texture_size")
    assert [item.identifier for item in items] == ["AUTO", "512", "1024", "2048", "4096"]
    assert all(api.MIN_TEXTURE_SIZE <= int(item.identifier) <= api.MAX_TEXTURE_SIZE for item in items[1:])
    auto = items[0].description
    for name, quality in api.QUALITIES.items():
        size = f"{2 * quality.texture_size} x {quality.texture_size}" if quality.texture_size else "64 x 32"
        assert f"{size} for {name.title()}" in auto, auto
    for item in items[1:]:
        size = int(item.identifier)
        assert f"{2 * size} x {size} texture" in item.description


def test_the_panel_and_the_preferences_draw_their_options_and_status(enabled):
    bpy.context.window_manager.ganverse3d.import_status = "Imported car_x and camera_x (4.50 m long) in 1.0 s."
    settings = bpy.context.scene.ganverse3d
    settings.photo, settings.mask, settings.length = "/photos/car.jpg", "/photos/car_mask.png", 3.5
    settings.quality, settings.texture_size = "BEST", "4096"
    items = []
    enabled.panel.GANVERSE3D_PT_import.draw(RecordingLayoutOwner(items), bpy.context)
    assert items == [("prop", "photo"), ("prop", "mask"), ("prop", "length"), ("prop", "quality"),
                     ("prop", "texture_size"), ("prop", "create_camera"),
                     ("prop", "photo_background"), ("prop", "part_materials"), ("prop", "separate_wheels"),
                     ("operator", "ganverse3d.import_photo"),
                     ("label", "Imported car_x and camera_x (4.50 m long) in 1.0 s.", "INFO")]
    assert OperatorButton.last.values == {"filepath": "/photos/car.jpg", "mask": "/photos/car_mask.png", "length": 3.5,
                                          "quality": "BEST", "texture_size": "4096", "create_camera": True,
                                          "photo_background": True, "part_materials": True,
                                          "separate_wheels": True}
    items = []
    preferences = bpy.context.preferences.addons[ADDON].preferences
    enabled.preferences.GANVERSE3D_AddonPreferences.draw(RecordingLayoutOwner(items, preferences), bpy.context)
    assert [item for item in items if item[0] != "label"] == [
        ("prop", "python"), ("prop", "model"), ("prop", "neural_model"), ("prop", "device"), ("prop", "timeout"),
        ("operator", "ganverse3d.check_backend")]
    assert ("label", f"Using Blender's own Python: {sys.executable}", "INFO") in items


def test_the_car_panel_shows_the_rig_of_the_selected_car_or_wheel_and_the_bake_button(enabled):
    panel = enabled.panel.GANVERSE3D_PT_car_rig
    car = bpy.data.objects.new("car_x", None)
    wheel = bpy.data.objects.new("car_x wheel_front_left", None)
    plain = bpy.data.objects.new("plain", None)
    try:
        for obj in (car, wheel, plain):
            bpy.context.scene.collection.objects.link(obj)
        enabled.part_materials.add_lights_property(car)
        bpy.context.view_layer.objects.active = car
        assert panel.poll(bpy.context), "a car with part materials only: its Lights"
        items = []
        panel.draw(RecordingLayoutOwner(items), bpy.context)
        assert items == [("label", "car_x", "AUTO"), ("prop", '["Lights"]')]
        assert not bpy.ops.ganverse3d.bake_wheel_rotation.poll(), "no wheels to bake"
        enabled.wheels.add_rig_properties(car)
        wheel[enabled.wheels.WHEEL_PROPERTY], wheel.parent = "wheel_front_left", car
        for active in (car, wheel):
            bpy.context.view_layer.objects.active = active
            items = []
            panel.draw(RecordingLayoutOwner(items), bpy.context)
            assert items == [("label", "car_x", "AUTO"), ("prop", '["Lights"]'), ("prop", '["Speed"]'),
                             ("prop", '["Distance"]'), ("prop", '["Steer"]'),
                             ("operator", "ganverse3d.bake_wheel_rotation")]
            assert bpy.ops.ganverse3d.bake_wheel_rotation.poll()
        bpy.context.view_layer.objects.active = plain
        assert not panel.poll(bpy.context) and not bpy.ops.ganverse3d.bake_wheel_rotation.poll()
    finally:
        bpy.data.batch_remove([car, wheel, plain])


def test_the_neural_preview_panel_draws_car_background_swaps_and_the_toggle(enabled):
    settings = bpy.context.scene.ganverse3d.preview
    draw = enabled.panel.GANVERSE3D_PT_neural_preview.draw
    items = []
    draw(RecordingLayoutOwner(items), bpy.context)
    assert items == [("prop", "car"), ("prop", "background"), ("prop", "swap_with"), ("prop", "swap_shape"),
                     ("prop", "swap_texture"), ("prop", "swap_background"), ("operator", "ganverse3d.neural_preview")]
    settings.background = "FILE"
    enabled.status.show(bpy.context, "preview_status", "The backend worker stopped.", failed=True)
    items = []
    draw(RecordingLayoutOwner(items), bpy.context)
    assert items[2] == ("prop", "background_photo") and items[-1] == ("label", "The backend worker stopped.", "ERROR")
    settings.property_unset("background")


def test_a_long_status_is_wrapped_to_the_sidebars_width_not_cut(enabled):
    error = ("The backend Python /home/someone/environments/ganverse3d-env/bin/python does not have the ganverse3d "
             "package; install it there or choose another Python in the add-on's preferences.")
    enabled.status.show(bpy.context, "import_status", error, failed=True)
    items = []
    narrow_sidebar = SimpleNamespace(window_manager=bpy.context.window_manager, preferences=bpy.context.preferences,
                                     region=SimpleNamespace(width=300))
    enabled.status.draw(RecordingLayout(items), narrow_sidebar, "import_status")
    lines = [text for _, text, _ in items]
    assert len(lines) > 2
    assert "".join(lines).replace(" ", "") == error.replace(" ", ""), "every character is shown, in order"
    assert max(map(len, lines)) <= enabled.status.chars_per_line(300, bpy.context.preferences.system.ui_scale or 1.0)
    assert [icon for _, _, icon in items] == ["ERROR"] + ["BLANK1"] * (len(lines) - 1)
    assert enabled.status.chars_per_line(600, 1.0) > enabled.status.chars_per_line(300, 1.0) > \
        enabled.status.chars_per_line(300, 2.0)


@pytest.mark.parametrize("setting, value, default", [("python", "/opt/other/python", ""), ("model", "gan", ""),
                                                     ("device", "CPU", "AUTO"), ("timeout", 60, 300)])
def test_changing_a_backend_setting_clears_stale_status_but_not_a_successful_import(enabled, setting, value, default):
    preferences = bpy.context.preferences.addons[ADDON].preferences
    status = bpy.context.window_manager.ganverse3d
    enabled.status.show(bpy.context, "backend", "The backend Python /nowhere/python does not exist.", failed=True)
    enabled.status.show(bpy.context, "import_status", "The backend Python /nowhere/python does not exist.",
                        failed=True)
    setattr(preferences, setting, value)
    assert (status.backend, status.backend_failed, status.import_status, status.import_status_failed) == \
        ("", False, "", False)
    enabled.status.show(bpy.context, "import_status", "Imported car_x (4.50 m long) in 1.0 s.")
    setattr(preferences, setting, default)
    assert status.backend == "" and status.import_status == "Imported car_x (4.50 m long) in 1.0 s."
