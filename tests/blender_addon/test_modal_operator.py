"""The add-on's operators with Blender's UI, driven by hand: the bpy module runs no event loop, so a probe
operator built on the same mixin gets timer and Esc events from the test, with a recording stand-in for the
window manager, its windows' areas and the status bar, and a fake worker behind it. invoke() (a button) runs
modal; execute() (a script, Adjust Last Operation, Repeat Last) must finish before it returns, UI or not."""

import time
from types import SimpleNamespace

import pytest

from ganverse3d_blender import operators, session
from ganverse3d_blender.worker_client import WorkerClient, WorkerConfig

TIMER, ESC, MOUSEMOVE = (SimpleNamespace(type="TIMER", value="NOTHING"), SimpleNamespace(type="ESC", value="PRESS"),
                         SimpleNamespace(type="MOUSEMOVE", value="NOTHING"))


class RecordingArea:
    """An area that records, at each redraw request, whether the backend was busy then."""

    def __init__(self, area_type):
        self.type, self.redraws_while_busy = area_type, []

    def tag_redraw(self):
        self.redraws_while_busy.append(session.worker_busy())


class RecordingWindowManager:
    def __init__(self):
        self.calls = []
        self.ganverse3d = SimpleNamespace(import_status="", import_status_failed=False, backend="",
                                          backend_failed=False)
        # The main window with the sidebar, and the preferences in a window of their own.
        self.areas = {"VIEW_3D": RecordingArea("VIEW_3D"), "PREFERENCES": RecordingArea("PREFERENCES")}
        self.windows = [SimpleNamespace(screen=SimpleNamespace(areas=[RecordingArea("OUTLINER"), self.areas["VIEW_3D"]])),
                        SimpleNamespace(screen=SimpleNamespace(areas=[self.areas["PREFERENCES"]]))]

    def event_timer_add(self, interval, window=None):
        self.calls.append(("timer_add", interval, window))
        return "timer"

    def event_timer_remove(self, timer):
        self.calls.append(("timer_remove", timer))

    def modal_handler_add(self, operator):
        self.calls.append(("modal_handler_add", type(operator).__name__))

    def progress_begin(self, low, high):
        self.calls.append(("progress_begin", low, high))

    def progress_update(self, value):
        self.calls.append(("progress_update", value))

    def progress_end(self):
        self.calls.append(("progress_end",))


class ModalProbe(operators.WorkerRequestOperator):
    """What both operators share, with a reconstruct request and recorded reports."""

    bl_label = "Probe"
    status_line = "import_status"

    def __init__(self, client):
        self.client, self.reports, self.finished_with, self.cleanups = client, [], None, 0

    def send(self, context):
        return self.client.request("reconstruct", photo="car.png")

    def finish(self, context, request):
        self.finished_with = request
        return {"FINISHED"}

    def report(self, kinds, message):
        self.reports.append((kinds, message))

    def cleanup(self):
        self.cleanups += 1


@pytest.fixture
def ui(monkeypatch):
    """A UI context (window, status bar) and an operators module that believes Blender has a UI."""
    monkeypatch.setattr(operators, "bpy", SimpleNamespace(app=SimpleNamespace(background=False)))
    status_bar = []
    context = SimpleNamespace(window_manager=RecordingWindowManager(), window="window", screen=None,
                              workspace=SimpleNamespace(status_text_set=status_bar.append))
    return context, status_bar


def drive(probe, context, timeout=5.0):
    """Send timer events every 20 ms until the operator stops running; returns its final result set."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe.modal(context, TIMER)
        if result != {"RUNNING_MODAL"}:
            return result
        time.sleep(0.02)
    raise AssertionError("the modal operator never finished")


def test_the_modal_operator_polls_shows_progress_and_finishes(ui, fake_python, monkeypatch):
    context, status_bar = ui
    client = WorkerClient(WorkerConfig(fake_python("slow")[0]))
    monkeypatch.setattr(session, "_client", client)
    probe = ModalProbe(client)
    try:
        began = time.monotonic()
        assert probe.invoke(context, None) == {"RUNNING_MODAL"}
        assert time.monotonic() - began < 0.5, "starting the request must not wait for the worker"
        assert context.window_manager.calls[:3] == [("timer_add", 0.1, "window"), ("modal_handler_add", "ModalProbe"),
                                                    ("progress_begin", 0, 100)]
        assert probe.modal(context, MOUSEMOVE) == {"PASS_THROUGH"}, "Blender stays usable while the worker works"
        assert drive(probe, context) == {"FINISHED"}
    finally:
        client.close()
    assert probe.finished_with.result["arguments"] == {"photo": "car.png"}
    assert ("progress_update", 50) in context.window_manager.calls
    assert "Probe: Predicting the mesh (50%) - Esc cancels" in status_bar
    assert status_bar[-1] is None, "the status bar is given back"
    assert context.window_manager.calls[-2:] == [("timer_remove", "timer"), ("progress_end",)]


def test_the_buttons_of_every_window_are_redrawn_when_the_backend_gets_busy_and_when_it_is_idle_again(
        ui, fake_python, monkeypatch):
    context, _ = ui
    client = WorkerClient(WorkerConfig(fake_python("slow")[0]))
    monkeypatch.setattr(session, "_client", client)
    probe = ModalProbe(client)
    try:
        probe.invoke(context, None)
        drive(probe, context)
    finally:
        client.close()
    for area in context.window_manager.areas.values():  # the sidebar's window and the preferences' window
        assert True in area.redraws_while_busy, f"{area.type} must show its button greyed during the run"
        assert area.redraws_while_busy[-1] is False, f"{area.type} must be redrawn once the backend is idle"
    assert context.window_manager.windows[0].screen.areas[0].redraws_while_busy == [], "other editors are left"


def test_execute_waits_for_the_answer_even_with_a_ui(ui, fake_python, monkeypatch):
    """Adjust Last Operation and Repeat Last call execute(); a modal run started there crashes Blender."""
    context, status_bar = ui
    client = WorkerClient(WorkerConfig(fake_python("slow")[0]))
    monkeypatch.setattr(session, "_client", client)
    probe = ModalProbe(client)
    try:
        assert probe.execute(context) == {"FINISHED"}
        assert not client.busy
    finally:
        client.close()
    assert probe.finished_with.result["arguments"] == {"photo": "car.png"}
    assert context.window_manager.calls == [], "no timer, modal handler or progress bar"
    assert status_bar == []


def test_esc_kills_the_worker_and_cancels(ui, fake_python, monkeypatch):
    context, status_bar = ui
    client = WorkerClient(WorkerConfig(fake_python("hang")[0]))
    monkeypatch.setattr(session, "_client", client)
    probe = ModalProbe(client)
    try:
        assert probe.invoke(context, None) == {"RUNNING_MODAL"}
        assert probe.modal(context, TIMER) == {"RUNNING_MODAL"}
        worker = client._process.popen
        assert probe.modal(context, ESC) == {"CANCELLED"}
        assert worker.wait(timeout=5) is not None and not client.running
    finally:
        client.close()
    assert probe.finished_with is None and probe.cleanups == 1
    assert probe.reports == [({"WARNING"}, "Probe cancelled.")]
    assert context.window_manager.ganverse3d.import_status == "Cancelled."
    assert not context.window_manager.ganverse3d.import_status_failed
    assert status_bar[-1] is None and ("timer_remove", "timer") in context.window_manager.calls
