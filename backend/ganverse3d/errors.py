"""The one exception type for problems a user can fix (bad input, missing weights, unwritable output).

Raise ``InputError("one clear sentence.")`` anywhere in the backend; the CLI prints the sentence and exits
with code 2, the worker replies with it, the add-on reports it. Anything else is a bug and keeps its traceback.

The library does not know which surface the user set a value in, so a message names a setting with
:func:`setting`, by its library name (the keyword argument or config field)::

    raise InputError(f"CUDA was asked for but this PyTorch sees no CUDA device; set {setting('device')} to cpu.")

and each surface words it in its own terms: the CLI as a flag (``--device``), the worker and the Blender
add-on as the setting the artist sees (*Device*). ``str(error)`` uses the library name.
"""

from __future__ import annotations

import re
from typing import Callable

# Marks a setting's name inside a message; NUL cannot occur in a file path or in a number's text.
_MARK = "\x00"
_SETTING = re.compile(f"{_MARK}([A-Za-z_][A-Za-z0-9_]*){_MARK}")


def setting(name: str) -> str:
    """A reference to the user-chosen setting ``name`` (e.g. ``"device"``, ``"kimg"``) inside a message."""
    return f"{_MARK}{name}{_MARK}"


class InputError(ValueError):
    """A problem with the user's input or environment, explained in one sentence."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def settings(self) -> list[str]:
        """The library names of the settings the message refers to, in order."""
        return _SETTING.findall(self.message)

    def worded(self, word: Callable[[str], str]) -> str:
        """The message with each setting named by ``word(name)``, e.g. ``lambda n: "--" + n``."""
        return _SETTING.sub(lambda match: word(match.group(1)), self.message)

    def __str__(self) -> str:
        return self.worded(lambda name: name)
