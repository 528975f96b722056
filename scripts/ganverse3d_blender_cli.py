"""Run any ``ganverse3d`` command inside Blender's Python, headless.

    blender --background --python scripts/ganverse3d_blender_cli.py -- <ganverse3d arguments>

for example ``... -- world render --n 64 --resolution 128 --seed 0 --out world64``. Blender exits with the
command's exit code: 0 on success, 2 for a problem the user can fix (one sentence on stderr).

The backend (``ganverse3d`` with torch, numpy, ...) is imported from Blender's own interpreter, or from the
site-packages folder named by the environment variable ``GANVERSE3D_SITE``, for example a virtual environment
made with the same Python minor version as Blender's (``.venv/lib/python3.11/site-packages``); its ``.pth``
files are honoured, so an editable install (``pip install -e .``) works too.
"""

import os
import platform
import site
import sys
import traceback

SITE_VARIABLE = "GANVERSE3D_SITE"
EXIT_USER_ERROR = 2  # the CLI's code for problems the user can fix
EXIT_BUG = 1  # an unexpected exception, as Python itself exits after a traceback


def ganverse3d_arguments(argv: list[str]) -> list[str]:
    """The arguments after Blender's ``--`` separator (Blender itself stops reading there)."""
    return argv[argv.index("--") + 1:] if "--" in argv else []


def put_site_first(folder: str) -> None:
    """Add a site-packages folder (with its .pth files) in front of everything else on ``sys.path``.

    ``site.addsitedir`` appends, which would leave the folder behind Blender's system paths: Debian's Blender
    runs the system Python 3.11, whose ``/usr/lib/python3/dist-packages`` may hold Debian's own (older) numpy,
    typing_extensions, jinja2, ... Mixing those with the venv's torch, built against the venv's versions, fails
    or misbehaves. Putting the folder first makes the venv's versions win, as they do when the venv runs.
    """
    before = list(sys.path)
    site.addsitedir(os.path.abspath(folder))
    sys.path[:] = [path for path in sys.path if path not in before] + before


def unmark_lookalike_addons() -> None:
    """Make modules that only look like enabled add-ons say they are not.

    When Blender exits it disables every module in ``sys.modules`` whose ``__addon_enabled__`` is true, calling
    its ``unregister``. ``torch.ops`` and ``torch.classes`` answer any attribute lookup with a new namespace
    object (a truthy one), so Blender takes them for add-ons and prints a traceback for each at every exit.
    Real add-ons carry the value True itself.
    """
    for module in list(sys.modules.values()):
        flag = getattr(module, "__addon_enabled__", False)
        if flag and flag is not True:
            module.__addon_enabled__ = False


def main() -> int:
    """Import the backend (from ``GANVERSE3D_SITE`` when set) and run the CLI; returns its exit code."""
    folder = os.environ.get(SITE_VARIABLE)
    if folder:
        if not os.path.isdir(folder):
            print(f"Error: {SITE_VARIABLE}={folder} is not a folder; point it at the site-packages folder of a "
                  f"Python {sys.version_info.major}.{sys.version_info.minor} environment with ganverse3d installed.",
                  file=sys.stderr)
            return EXIT_USER_ERROR
        put_site_first(folder)
    try:
        import ganverse3d.api  # noqa: F401  (imports torch, numpy and pillow: the whole backend must load)
        from ganverse3d.cli import main as ganverse3d_main
    except ImportError as error:
        where = f"{SITE_VARIABLE}={folder}" if folder else f"Blender's Python {platform.python_version()}"
        print(f"Error: cannot import the ganverse3d backend from {where} ({error}); install it into a Python "
              f"{sys.version_info.major}.{sys.version_info.minor} virtual environment and set {SITE_VARIABLE} to "
              f"its site-packages folder (see the README, 'Headless stages inside Blender').", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        return ganverse3d_main(ganverse3d_arguments(sys.argv))
    except Exception:  # a bug: keep its traceback, and fail (an exception escaping the script would exit 0)
        traceback.print_exc()
        return EXIT_BUG
    finally:
        unmark_lookalike_addons()


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Blender exits with the code of a SystemExit raised by a --python script (and runs its normal shutdown,
    # which removes its session's temporary folder). Ending the script without it would exit with 0 whatever
    # happened, and with torch loaded, Blender 3.4's shutdown after a script that simply ends can crash.
    sys.exit(exit_code)
