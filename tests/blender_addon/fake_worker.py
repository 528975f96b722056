"""A stand-in for ``python -m ganverse3d.worker`` that misbehaves on purpose, for the worker client's tests.

Run as ``fake_worker.py BEHAVIOUR STARTS_FILE [worker options...]``; every start appends a line to STARTS_FILE
(so tests can count restarts). Behaviours:

* ``echo``: a well-behaved worker: every request gets two progress events, then a result
  ``{"op": ..., "arguments": {...}, "pid": ...}``; ``shutdown`` exits 0; ``fail`` gets an "input" error reply.
* ``exit``: says on stderr what a Python without the backend says, then exits with code 1 at once.
* ``crash``: reads one request, writes a last line to stderr, and dies with exit code 3.
* ``garbage``: answers the first request with a line that is not JSON.
* ``hang``: reads requests and never answers.
* ``slow``: like ``echo``, but one progress event and half a second before the result.
* ``bad_mesh``: answers ``reconstruct`` with a readable texture and framed photo (copies of the photo) but a
  mesh whose faces point past its vertices, so the add-on fails half-way through building the car.
"""

import json
import os
import shutil
import sys
import time

behaviour, starts_file = sys.argv[1], sys.argv[2]
with open(starts_file, "a") as starts:
    starts.write(f"{os.getpid()} {' '.join(sys.argv[3:])}\n")


def reply(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if behaviour == "exit":
    sys.stderr.write("Traceback (most recent call last):\nModuleNotFoundError: No module named 'ganverse3d'\n")
    sys.exit(1)

for line in sys.stdin:
    request = json.loads(line)
    request_id, op = request["id"], request["op"]
    if behaviour == "crash":
        sys.stderr.write("Fatal Python error: Segmentation fault\n")
        sys.stderr.flush()
        os._exit(3)
    if behaviour == "garbage":
        sys.stdout.write("Loading model weights... done\n")
        sys.stdout.flush()
        continue
    if behaviour == "hang":
        time.sleep(3600)
    if behaviour == "slow":
        reply({"id": request_id, "type": "progress", "fraction": 0.5, "message": "Predicting the mesh"})
        time.sleep(0.5)
    arguments = {key: value for key, value in request.items() if key not in ("protocol", "id", "op")}
    if behaviour == "bad_mesh":
        out_dir = request["out_dir"]
        files = {name: os.path.join(out_dir, name) for name in ("mesh.json", "texture.png", "photo_framed.png")}
        shutil.copy(request["photo"], files["texture.png"])
        shutil.copy(request["photo"], files["photo_framed.png"])
        with open(files["mesh.json"], "w") as mesh:
            json.dump({"vertices": [[0, 0, 0], [1, 0, 0], [0, 1, 0]], "faces": [[0, 1, 7]], "uvs": [[0, 0]] * 3}, mesh)
        camera = {"location": [0, -5, 1], "rotation_euler": [1.4, 0, 0], "lens": 50, "sensor_width": 36,
                  "sensor_height": 36, "sensor_fit": "VERTICAL"}
        reply({"id": request_id, "type": "result", "mesh": files["mesh.json"], "texture": files["texture.png"],
               "framed_photo": files["photo_framed.png"], "length": 4.5, "scale": 1.0, "camera": camera})
        continue
    if op == "fail":
        reply({"id": request_id, "type": "error", "kind": "input", "message": "No car found in the photo."})
        continue
    for fraction in (0.25, 0.75) if behaviour == "echo" else ():
        reply({"id": request_id, "type": "progress", "fraction": fraction, "message": f"Step {fraction}"})
    reply({"id": request_id, "type": "result", "op": op, "arguments": arguments, "pid": os.getpid()})
    if op == "shutdown":
        sys.exit(0)
