"""The add-on's side of the backend worker protocol (version 2, documented in ``ganverse3d.worker``).

Pure standard library and no bpy, so it runs (and is tested) anywhere. A :class:`WorkerClient` starts
``PYTHON -m ganverse3d.worker --device D [--model M]`` on the first request and keeps it running, so the model
loads once. Two reader threads drain the worker's pipes: stdout lines (the protocol) go into a queue, stderr
lines (library output, tracebacks) into a short tail that error messages quote.

Nothing here blocks the caller: :meth:`WorkerClient.request` writes one JSON line and returns a
:class:`Request` handle, and :meth:`Request.poll` takes whatever the worker has sent since. Blender's modal
operator polls it from a timer; background mode calls :meth:`Request.wait`, which polls in a loop.

Failures end the request with one sentence in :attr:`Request.error` and never raise: a worker that cannot be
started, that dies (the message quotes the last line of its stderr), that writes something that is not a
protocol line, or that does not answer within the op's timeout (it is killed). The next request starts a new
worker. Cancelling kills the worker too: a reconstruction is one uninterruptible forward pass in the worker,
so killing it is the only way to stop it at once; the cost is a fresh start (a few seconds) on the next request.
"""

from __future__ import annotations

import collections
import json
import queue
import subprocess
import threading
import time
from dataclasses import dataclass

PROTOCOL_VERSION = 2
# Seconds an op may take from the moment it is sent, worker start-up included (importing torch and loading
# the model take most of the first hello on a slow machine; the first neural_render loads StyleGAN-R).
DEFAULT_TIMEOUTS = {"hello": 120.0, "reconstruct": 300.0, "neural_render": 120.0, "swap": 30.0, "shutdown": 10.0}
# Lines of the worker's stderr kept for error messages.
STDERR_TAIL_LINES = 50
# Longest excerpt of a stray stdout line quoted in an error message.
_QUOTE_CHARS = 80
_EOF = object()


@dataclass(frozen=True)
class WorkerConfig:
    """How to start the worker.

    Attributes:
        python: path of the Python interpreter that has the ``ganverse3d`` package.
        device: "auto", "cpu" or "cuda".
        model: path of an inverse-graphics bundle; empty = the backend's embedded one.
    """

    python: str
    device: str = "auto"
    model: str = ""

    def command(self) -> list[str]:
        command = [self.python, "-m", "ganverse3d.worker", "--device", self.device]
        return command + ["--model", self.model] if self.model else command


class Request:
    """One request in flight. Poll it; read :attr:`progress`, :attr:`message`, then :attr:`result` or
    :attr:`error` once :attr:`done`.

    Attributes:
        id: the protocol id (an int, unique per client).
        op: the op name, e.g. "reconstruct".
        timeout: seconds allowed from sending until the final reply.
        started: time.monotonic() when it was sent.
        progress: last progress fraction in [0, 1].
        message: last progress message ("" until the first one).
        result: the result reply (without "id" and "type") once it succeeded, else None.
        error: one sentence once it failed (worker error reply, dead or hung worker, cancel), else None.
    """

    def __init__(self, client: WorkerClient, request_id: int, op: str, timeout: float, started: float):
        self._client = client
        self.id, self.op, self.timeout, self.started = request_id, op, timeout, started
        self.progress, self.message = 0.0, ""
        self.result: dict | None = None
        self.error: str | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def poll(self) -> bool:
        """Take in what the worker has sent so far, without blocking; True once the request is done."""
        if not self.done:
            self._client._pump(self)
        return self.done

    def wait(self, interval: float = 0.05) -> bool:
        """Block until the request is done (the op's timeout bounds the wait); True when it succeeded."""
        while not self.poll():
            time.sleep(interval)
        return self.error is None

    def _finish(self, result: dict | None = None, error: str | None = None) -> None:
        if not self.done:
            self.result, self.error = result, error


class _WorkerProcess:
    """A started worker with its two reader threads (stdout -> queue of lines, stderr -> bounded tail)."""

    def __init__(self, command: list[str]):
        startup_flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # no console window pops up on Windows
        self.popen = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, encoding="utf-8", errors="replace", bufsize=1,
                                      creationflags=startup_flags)
        self.lines: queue.Queue = queue.Queue()
        self.stderr_tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stdout_thread = threading.Thread(target=self._read_stdout, daemon=True)
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stdout_thread.start()
        self._stderr_thread.start()

    def _read_stdout(self) -> None:
        for line in self.popen.stdout:
            self.lines.put(line)
        self.lines.put(_EOF)

    def _read_stderr(self) -> None:
        for line in self.popen.stderr:
            if line.strip():
                self.stderr_tail.append(line.rstrip())

    def send(self, message: dict) -> bool:
        """Write one protocol line; False when the worker's stdin is closed (the worker died)."""
        try:
            self.popen.stdin.write(json.dumps(message) + "\n")
            self.popen.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):  # ValueError: the pipe is already closed on our side
            return False

    def exit_code(self, wait: float) -> int | None:
        try:
            return self.popen.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None

    def last_stderr_line(self) -> str:
        self._stderr_thread.join(timeout=1.0)  # the worker's last words may still be in the pipe
        return self.stderr_tail[-1] if self.stderr_tail else ""

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        for pipe in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            try:
                pipe.close()
            except OSError:
                pass


class WorkerClient:
    """One backend worker, started on demand, restarted after a failure; one request at a time.

    Args:
        config: how to start the worker (:class:`WorkerConfig`).
        timeouts: seconds per op, overriding :data:`DEFAULT_TIMEOUTS` (ops not named there get "reconstruct"'s).
    """

    def __init__(self, config: WorkerConfig, timeouts: dict[str, float] | None = None):
        self.config = config
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self._process: _WorkerProcess | None = None
        self._pending: Request | None = None
        self._next_id = 1

    @property
    def running(self) -> bool:
        """Whether a worker process is alive."""
        return self._process is not None and self._process.popen.poll() is None

    @property
    def busy(self) -> bool:
        """Whether a request is in flight (poll it to move it on)."""
        return self._pending is not None and not self._pending.done

    def request(self, op: str, **arguments) -> Request:
        """Send ``{"protocol": 2, "id": N, "op": op, **arguments}``, starting the worker if none runs.

        Returns the handle at once; a request that cannot even be sent comes back already failed.
        """
        timeout = self.timeouts.get(op, self.timeouts["reconstruct"])
        request = Request(self, self._next_id, op, timeout, time.monotonic())
        self._next_id += 1
        if self.busy:
            request._finish(error=f"The backend is still busy with '{self._pending.op}'; wait for it or cancel it.")
            return request
        if not self.running:
            self._discard_process()
            start_error = self._start()
            if start_error:
                request._finish(error=start_error)
                return request
        self._pending = request
        if not self._process.send({"protocol": PROTOCOL_VERSION, "id": request.id, "op": op, **arguments}):
            self._fail_dead(request)
        return request

    def cancel(self) -> None:
        """Stop the request in flight by killing the worker (see the module docstring for why)."""
        if self.busy:
            self._pending._finish(error=f"Cancelled '{self._pending.op}'.")
        self._discard_process()

    def close(self, timeout: float = 2.0) -> None:
        """Ask an idle worker to shut down (killing it after ``timeout`` s); kill a busy one."""
        if self.running and not self.busy:
            shutdown = self.request("shutdown")
            deadline = time.monotonic() + timeout
            while not shutdown.poll() and time.monotonic() < deadline:
                time.sleep(0.02)
            if self._process is not None:
                self._process.exit_code(wait=max(0.0, deadline - time.monotonic()))
        if self.busy:
            self._pending._finish(error=f"The backend was closed during '{self._pending.op}'.")
        self._discard_process()

    # -----------------------------------------------------------------------------------------------

    def _start(self) -> str | None:
        """Start the worker; returns an error sentence when that is impossible."""
        python = self.config.python
        try:
            self._process = _WorkerProcess(self.config.command())
        except FileNotFoundError:
            return f"The backend Python {python} does not exist; choose another in the add-on's preferences."
        except PermissionError:
            return f"The backend Python {python} cannot be run (permission denied)."
        except OSError as error:
            return f"The backend Python {python} cannot be started: {error.strerror or error}."
        return None

    def _discard_process(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process = None

    def _fail_dead(self, request: Request) -> None:
        process = self._process
        code = process.exit_code(wait=2.0)
        last_line = process.last_stderr_line()
        self._discard_process()
        if "No module named 'ganverse3d" in last_line:  # the most common set-up mistake gets its own advice
            request._finish(error=f"The backend Python {self.config.python} does not have the ganverse3d package; "
                                  f"install it there or choose another Python in the add-on's preferences.")
            return
        status = f"exit code {code}" if code is not None else "its output closed"
        detail = f": {last_line}" if last_line else " without a message"
        request._finish(error=f"The backend worker stopped during '{request.op}' ({status}){detail}")

    def _pump(self, request: Request) -> None:
        """Apply every queued worker line to ``request``, then enforce its timeout."""
        if request is not self._pending or self._process is None:
            request._finish(error=f"The backend worker was replaced during '{request.op}'.")
            return
        while not request.done:
            try:
                line = self._process.lines.get_nowait()
            except queue.Empty:
                break
            if line is _EOF:
                self._fail_dead(request)
                return
            self._apply(request, line)
        if not request.done and time.monotonic() - request.started > request.timeout:
            self._discard_process()
            request._finish(error=f"The backend did not finish '{request.op}' within {request.timeout:g} s, so it "
                                  f"was stopped; the next request starts it again.")

    def _apply(self, request: Request, line: str) -> None:
        """One stdout line of the worker -> progress, result or error of ``request``."""
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or reply.get("type") not in ("progress", "result", "error"):
            excerpt = line.strip()[:_QUOTE_CHARS]
            self._discard_process()
            request._finish(error=f"The backend worker wrote something that is not a protocol line: {excerpt!r}.")
            return
        if reply.get("id") not in (request.id, None):
            return  # an answer to an earlier request that this client stopped waiting for
        kind = reply.pop("type")
        reply.pop("id", None)
        if kind == "progress":
            request.progress = float(reply.get("fraction", request.progress))
            request.message = str(reply.get("message", request.message))
        elif kind == "result":
            request._finish(result=reply)
        else:
            request._finish(error=str(reply.get("message") or f"The backend failed '{request.op}' without a message."))
