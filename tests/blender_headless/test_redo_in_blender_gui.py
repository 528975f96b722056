"""The add-on in a real ``blender`` with its UI (Debian's 3.4 on a virtual X display, ``xvfb-run``): a modal
import, Adjust Last Operation, Repeat Last, scripted calls, the file browser and the redraws, run by
redo_in_blender_gui.py with the fake worker's ``car`` behaviour (the real backend is tested in
test_addon_in_blender.py; here what matters is Blender's operator lifecycle, which a backend would only slow
down). Before execute() waited for the answer, the redo step crashed Blender with a segmentation fault. Undo after
Adjust Last Operation once removed two imports at once, only because the script redid by a Python call without
bpy.ops' ``undo`` argument, which adds no undo step; the redo panel itself, driven here by simulated keys, adds one."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "blender_addon"))
import fake_worker  # noqa: E402

PHOTO = REPO / "docs" / "example_car.png"


def require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"No `{program}` on PATH; install Debian's: "
                    f"apt-get install -y --no-install-recommends blender xvfb xauth")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict, list]:
    """Run the scenario once -> (its STEP lines by step name, the reconstruct requests the fake worker read)."""
    backends = tmp_path_factory.mktemp("backend")
    backend_python, starts = fake_worker.write_launcher(backends, "car")
    part_car_python, _ = fake_worker.write_launcher(backends, "part_car")
    done = subprocess.run([require("xvfb-run"), "-a", require("blender"), "--factory-startup", "--enable-event-simulate",
                           "--python", str(REPO / "tests" / "blender_headless" / "redo_in_blender_gui.py"), "--",
                           backend_python, str(PHOTO), part_car_python], capture_output=True, text=True,
                          timeout=300)
    lines = [json.loads(line[len("STEP "):]) for line in done.stdout.splitlines() if line.startswith("STEP ")]
    assert done.returncode == 0, (f"Blender exited with {done.returncode}:\n{done.stdout[-3000:]}\nstderr:\n"
                                  f"{done.stderr[-2000:]}")
    requests = [request for request in fake_worker.received(starts) if request["op"] == "reconstruct"]
    return {line["step"]: line for line in lines}, requests


@pytest.fixture(scope="module")
def steps(run) -> dict:
    return run[0]


def test_a_modal_import_builds_the_car_and_redraws_the_sidebar(steps):
    invoke = steps["invoke"]
    assert invoke["result"] == ["RUNNING_MODAL"] and invoke["cars"] == [["car_example_car", 4.0]]
    assert invoke["status"].startswith("Imported car_example_car and camera_example_car (4.00 m long) in ")
    assert invoke["last_sidebar_draw"] == [invoke["status"], False], "the sidebar shows the end, not busy"
    assert invoke["collections"] == [["example_car", ["camera_example_car", "car_example_car"]]]
    assert invoke["render"] == [1920, 1920], "the factory 1920 x 1080 render becomes the square camera's"


def test_adjust_last_operation_reimports_with_the_new_length_in_place(steps):
    redo = steps["redo"]
    assert redo["last"] == "GANVERSE3D_OT_import_photo" and redo["result"] == ["FINISHED"]
    assert redo["cars"] == [["car_example_car", 5.0]], "the redo replaces the car: same name, new length"
    assert redo["collections"] == [["example_car", ["camera_example_car", "car_example_car"]]], "and its collection"


def test_adjust_last_operation_sends_the_new_quality_and_texture_size_and_repeat_last_keeps_them(run):
    options = [(request["quality"], request["texture_size"]) for request in run[1]]
    assert options[:3] == [("fast", None), ("best", 2048), ("best", 2048)], "invoke, redo, repeat"


def test_repeat_last_imports_another_car(steps):
    assert steps["repeat"]["cars"] == [["car_example_car", 5.0], ["car_example_car.001", 5.0]]


def test_a_scripted_call_returns_with_the_car_built_every_time(steps):
    script = steps["script"]
    assert script["results"] == [["FINISHED"], ["FINISHED"]]
    assert script["cars"][-2:] == [["car_example_car.002", 3.0], ["car_example_car.003", 3.0]]


def test_a_photo_chosen_in_the_file_browser_fills_the_photo_field_and_is_imported(steps):
    chosen = steps["file_browser"]
    assert chosen["photo_field"] == str(PHOTO)
    assert chosen["cars"][-1] == ["car_example_car.004", 2.0]
    assert chosen["status"].startswith("Imported car_example_car.004 ")


def test_a_check_in_the_preferences_window_redraws_the_sidebar_of_the_main_window(steps):
    check = steps["check_from_preferences"]
    assert check["status"] == "The backend answered without a summary."  # the fake worker's hello
    _, backend_status, busy = check["last_sidebar_draw"]
    assert backend_status == check["status"] and not busy


def test_a_part_car_is_undone_in_one_step_and_adjusted_to_joined_wheels(steps):
    car = "car_example_car.005"
    wheels = [f"{car} wheel_{end}_{side}" for end in ("front", "rear") for side in ("left", "right")]
    invoke, undo = steps["part_car_invoke"], steps["part_car_undo"]
    again, adjusted = steps["part_car_invoke_again"], steps["part_car_adjusted"]
    assert invoke["wheels"] == sorted(wheels)
    assert invoke["slots"] == [f"{car}_{part}" for part in ("body", "window", "tyre", "headlight", "taillight",
                                                             "plate")]
    assert undo["result"] == ["FINISHED"] and undo["wheels"] == [] and undo["car_count"] == invoke["car_count"] - 1
    assert undo["cars"] == steps["check_from_preferences"]["cars"], "one undo step: exactly the whole import"
    assert {key: again[key] for key in invoke if key != "step"} == {key: invoke[key] for key in invoke if key != "step"}
    assert adjusted["result"] == ["FINISHED"] and adjusted["wheels"] == [], "Separate Wheels off: no wheel objects"
    assert adjusted["slots"] == invoke["slots"] + [f"{car}_tyre", f"{car}_rim"], "the wheels in the car's mesh"
    assert adjusted["car_count"] == invoke["car_count"]


def test_after_a_file_browser_import_undo_removes_an_adjusted_import_alone_then_the_file_browser_s(steps):
    chosen, imported = steps["file_browser_again"], steps["invoke_after_file_browser"]
    adjusted, undone, undone_again = (steps[step] for step in ("adjusted_after_file_browser", "undo_adjusted",
                                                               "undo_file_browser"))
    assert chosen["cars"][-1] == ["car_example_car.006", 2.5]
    assert imported["cars"] == chosen["cars"] + [["car_example_car.007", 3.5]]
    assert adjusted["cars"] == chosen["cars"] + [["car_example_car.007", 4.5]], "the redo panel's Length"
    assert undone["result"] == ["FINISHED"] and undone["cars"] == chosen["cars"], "only the adjusted import goes"
    assert undone_again["cars"] == steps["part_car_adjusted"]["cars"], "then the file browser's import"
