"""The add-on's worker client against fake workers: round trip, progress, error replies, a worker that cannot
start, crashes, writes garbage or hangs (killed after the timeout), cancel, and a restart on the next request."""

import time

from ganverse3d_blender.worker_client import WorkerClient, WorkerConfig


def started_pids(starts_file):
    return [line.split()[0] for line in starts_file.read_text().splitlines()]


def test_round_trip_with_progress_and_one_process_for_many_requests(fake_python):
    python, starts = fake_python("echo")
    client = WorkerClient(WorkerConfig(python, device="cpu", model="/models/inverse.safetensors"))
    try:
        first = client.request("reconstruct", photo="car.png", length=4.5)
        assert first.wait()
        assert first.result["op"] == "reconstruct"
        assert first.result["arguments"] == {"photo": "car.png", "length": 4.5}
        assert (first.progress, first.message) == (0.75, "Step 0.75")
        second = client.request("hello")
        assert second.wait() and second.id != first.id
        assert second.result["pid"] == first.result["pid"], "the worker must stay running between requests"
        assert starts.read_text().split("\n")[0].split()[1:] == ["--device", "cpu", "--model",
                                                                  "/models/inverse.safetensors"]
    finally:
        client.close()
    assert len(started_pids(starts)) == 1


def test_an_error_reply_fails_only_that_request(fake_python):
    python, starts = fake_python("echo")
    client = WorkerClient(WorkerConfig(python))
    try:
        failed = client.request("fail")
        assert not failed.wait()
        assert failed.error == "No car found in the photo." and failed.result is None
        assert client.request("hello").wait()
    finally:
        client.close()
    assert len(started_pids(starts)) == 1


def test_poll_returns_at_once_while_the_worker_works(fake_python):
    python, _ = fake_python("hang")
    client = WorkerClient(WorkerConfig(python))
    try:
        request = client.request("reconstruct")
        began = time.monotonic()
        for _ in range(20):
            assert request.poll() is False
        assert time.monotonic() - began < 0.1
        assert client.busy
    finally:
        client.close()


def test_a_python_without_the_backend_is_reported_as_such(fake_python):
    python, _ = fake_python("exit")
    client = WorkerClient(WorkerConfig(python))
    request = client.request("hello")
    assert not request.wait()
    assert request.error == (f"The backend Python {python} does not have the ganverse3d package; install it there "
                             f"or choose another Python in the add-on's preferences.")
    assert not client.running


def test_a_missing_interpreter_is_one_sentence(tmp_path):
    request = WorkerClient(WorkerConfig(str(tmp_path / "no_python"))).request("hello")
    assert request.done and request.error.startswith(f"The backend Python {tmp_path / 'no_python'} does not exist")


def test_a_crash_is_detected_and_the_next_request_starts_a_new_worker(fake_python):
    python, starts = fake_python("crash")
    client = WorkerClient(WorkerConfig(python))
    first = client.request("reconstruct", photo="car.png")
    assert not first.wait()
    assert first.error == "The backend worker stopped during 'reconstruct' (exit code 3): " \
                          "Fatal Python error: Segmentation fault"
    second = client.request("reconstruct", photo="car.png")
    assert not second.wait()
    assert len(set(started_pids(starts))) == 2


def test_garbage_on_stdout_stops_the_worker(fake_python):
    python, _ = fake_python("garbage")
    client = WorkerClient(WorkerConfig(python))
    request = client.request("hello")
    assert not request.wait()
    assert request.error == ("The backend worker wrote something that is not a protocol line: "
                             "'Loading model weights... done'.")
    assert not client.running


def test_a_hung_worker_is_killed_after_the_timeout_and_restarted_on_the_next_request(fake_python):
    python, _ = fake_python("hang")
    client = WorkerClient(WorkerConfig(python), timeouts={"reconstruct": 0.5})
    try:
        began = time.monotonic()
        request = client.request("reconstruct", photo="car.png")
        process = client._process.popen
        assert not request.wait()
        waited = time.monotonic() - began
        assert 0.5 <= waited < 3.0
        assert request.error.startswith("The backend did not finish 'reconstruct' within 0.5 s")
        assert process.poll() is not None, "the hung worker must be killed"
        assert not client.busy
        client.request("reconstruct", photo="car.png")
        assert client.running and client._process.popen.pid != process.pid
    finally:
        client.close()


def test_cancel_kills_the_worker_and_the_next_request_restarts_it(fake_python):
    python, _ = fake_python("hang")
    client = WorkerClient(WorkerConfig(python))
    try:
        request = client.request("reconstruct")
        process = client._process.popen
        client.cancel()
        assert request.done and request.error == "Cancelled 'reconstruct'."
        assert process.poll() is not None and not client.running
        client.request("reconstruct")
        assert client.running and client._process.popen.pid != process.pid
    finally:
        client.close()


def test_a_second_request_while_busy_fails_without_disturbing_the_first(fake_python):
    python, _ = fake_python("echo")
    client = WorkerClient(WorkerConfig(python))
    try:
        first = client.request("reconstruct", photo="a.png")
        second = client.request("reconstruct", photo="b.png")
        assert second.error == "The backend is still busy with 'reconstruct'; wait for it or cancel it."
        assert first.wait() and first.result["arguments"] == {"photo": "a.png"}
    finally:
        client.close()


def test_close_shuts_an_idle_worker_down_cleanly(fake_python):
    python, _ = fake_python("echo")
    client = WorkerClient(WorkerConfig(python))
    assert client.request("hello").wait()
    process = client._process.popen
    client.close()
    assert process.returncode == 0 and not client.running
