"""The one exception type for problems a user can fix (bad input, missing weights, unwritable output).

Raise ``InputError("one clear sentence.")`` anywhere in the backend; the CLI prints the sentence and exits
with code 2, the worker replies with it, the add-on reports it. Anything else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """A problem with the user's input or environment, explained in one sentence."""
