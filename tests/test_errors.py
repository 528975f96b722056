"""Library errors name what the user set by its library name; each surface words it its own way."""

import ast
import re
from pathlib import Path

from ganverse3d.cli import main
from ganverse3d.errors import InputError, setting

PACKAGE = Path(__file__).resolve().parents[1] / "backend" / "ganverse3d"


def test_a_setting_is_worded_by_each_surface():
    error = InputError(f"{setting('view_layers')} must be from 1 to 9, not 12; see /data/{{odd}}.")
    assert error.settings == ["view_layers"]
    assert str(error) == "view_layers must be from 1 to 9, not 12; see /data/{odd}."
    assert error.worded(lambda name: "--" + name.replace("_", "-")).startswith("--view-layers must")
    assert error.worded(lambda name: "the View Layers setting").startswith("the View Layers setting must")


def test_the_cli_words_a_setting_as_the_running_commands_option(tmp_path, capsys):
    # The library says `count` in both; `world render` calls it --n, `dataset views` --candidates.
    assert main(["world", "render", "--n", "0", "--out", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err.startswith("Error: --n must be at least 1")


def _messages_of_input_errors(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "InputError" and node.args:
            yield node.lineno, "".join(part.value for part in ast.walk(node.args[0])
                                       if isinstance(part, ast.Constant) and isinstance(part.value, str))


def test_library_errors_never_name_a_command_line_flag():
    flags = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        for line, text in _messages_of_input_errors(ast.parse(path.read_text())):
            if re.search(r"(?<![\w-])--[a-z]", text):
                flags.append(f"{path.relative_to(PACKAGE)}:{line}: {text[:80]}")
    assert not flags, "library InputErrors that name flags instead of setting(...):\n" + "\n".join(flags)


def test_the_flag_check_sees_a_flag():
    tree = ast.parse('raise InputError(f"--kimg must be positive, not {kimg}.")')
    assert [text for _, text in _messages_of_input_errors(tree)] == ["--kimg must be positive, not ."]
