"""The add-on's one backend worker, shared by its operators and configured by its preferences.

The worker keeps the model loaded between imports, so it lives as long as the add-on (or until the
preferences that start it change); ``unregister`` shuts it down.
"""

import sys

import bpy

from .worker_client import WorkerClient, WorkerConfig

_client = None


class AddonNotEnabled(Exception):
    """The add-on's classes are registered but it is not enabled in the preferences (no preferences exist)."""


def addon_preferences(context):
    """This add-on's preferences; they exist only once the add-on is enabled in Blender's preferences."""
    addon = context.preferences.addons.get(__package__)
    if addon is None:
        raise AddonNotEnabled("The GANverse3D add-on is not enabled in Blender's preferences.")
    return addon.preferences


def backend_python(preferences) -> str:
    """The interpreter that runs the worker: the preference, or Blender's own Python when it is empty."""
    return bpy.path.abspath(preferences.python) if preferences.python else sys.executable


def worker_config(context) -> WorkerConfig:
    preferences = addon_preferences(context)
    model = bpy.path.abspath(preferences.model) if preferences.model else ""
    return WorkerConfig(python=backend_python(preferences), device=preferences.device.lower(), model=model)


def worker_client(context) -> WorkerClient:
    """The shared client, restarted with the current preferences when they changed since it was made."""
    global _client
    config = worker_config(context)
    timeouts = {"reconstruct": float(addon_preferences(context).timeout)}
    if _client is None or _client.config != config:
        close_worker()
        _client = WorkerClient(config, timeouts)
    _client.timeouts.update(timeouts)
    return _client


def worker_busy() -> bool:
    return _client is not None and _client.busy


def cancel_worker() -> None:
    if _client is not None:
        _client.cancel()


def close_worker() -> None:
    global _client
    if _client is not None:
        _client.close()
        _client = None
