"""ganverse3d.files: paths the system refuses are one InputError sentence with a shortened path, several files are
written all or none, outputs never replace inputs, and a writer's own orphan temporaries are found by name."""

import os

import numpy as np
import pytest
from PIL import Image

from ganverse3d.errors import InputError
from ganverse3d.files import (MAX_SHOWN_PATH, check_not_an_input, check_output_file, check_outputs, exists, is_dir,
                              is_file, png_bytes, remove_temp_files, save_png, shown_path, write_files)

LONG_NAME = "a" * 5000 + ".png"  # no file system takes a 5000-character name: ENAMETOOLONG


@pytest.mark.parametrize("check", [is_file, is_dir, exists, lambda path: check_output_file(path, (".png",))])
def test_a_name_the_system_refuses_is_one_sentence_with_a_shortened_path(tmp_path, check):
    path = tmp_path / LONG_NAME
    with pytest.raises(InputError) as raised:
        check(path)
    message = str(raised.value)
    assert message.startswith(f"Cannot use {tmp_path}/aaa") and message.endswith("aaa.png: File name too long.")
    assert len(message) < MAX_SHOWN_PATH + 40 and "\n" not in message


def test_what_is_missing_is_no_error(tmp_path):
    (tmp_path / "file").write_text("")
    assert not exists(tmp_path / "missing") and not is_file(tmp_path / "missing") and not is_dir(tmp_path / "missing")
    assert not exists(tmp_path / "file" / "below_a_file")  # ENOTDIR, as pathlib reads it
    assert is_file(tmp_path / "file") and not is_dir(tmp_path / "file") and is_dir(tmp_path)


def test_shown_paths_keep_their_start_and_end():
    assert shown_path("/short/path.png") == "/short/path.png"
    shown = shown_path("/start/" + "m" * 10_000 + "/end.png")
    assert len(shown) == MAX_SHOWN_PATH and shown.startswith("/start/mmm") and shown.endswith("mmm/end.png")
    assert "..." in shown


def test_several_files_appear_all_or_none_and_pngs_are_the_bytes_save_png_writes(tmp_path):
    image = np.random.default_rng(0).random((3, 5, 7)).astype(np.float32)
    (tmp_path / "b.png").mkdir()  # in the way of the second file
    with pytest.raises(InputError, match="b.png: a folder of that name is in the way"):
        write_files({tmp_path / "a.png": png_bytes(image), tmp_path / "b.png": b"x", tmp_path / "c.txt": b"y"})
    assert sorted(path.name for path in tmp_path.iterdir()) == ["b.png"]  # neither a file nor a temporary
    save_png(tmp_path / "saved.png", image)
    assert write_files({tmp_path / "a.png": png_bytes(image)}) == [tmp_path / "a.png"]
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "saved.png").read_bytes()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")),
                          (np.clip(image, 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8))


def test_an_output_that_is_an_input_is_refused_in_any_spelling(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"photo")
    os.symlink(photo, tmp_path / "link.png")
    for output in (photo, tmp_path / "sub" / ".." / "photo.png", tmp_path / "link.png"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(InputError, match="would replace the photo"):
            check_not_an_input(output, {"photo": photo, "mask": None}, "out_path")
        with pytest.raises(InputError, match="would replace the photo"):
            check_outputs([tmp_path / "other.png", output], {"photo": str(photo)})
    check_outputs([tmp_path / "other.png"], {"photo": photo})
    assert photo.read_bytes() == b"photo"


def test_a_writer_removes_only_the_orphan_temporaries_of_its_own_names(tmp_path):
    (tmp_path / "sub").mkdir()
    own = [".mesh.json.k2k2k2k2.json", ".texture.png.a1b2c3d4.png"]
    others = [".other.png.a1b2c3d4.png", "sub/.texture.png.a1b2c3d4.png", ".texture.png.notes",
              ".texture.png.too_long_suffix.png"]
    for name in own + others:
        (tmp_path / name).write_bytes(b"left behind")
    removed = remove_temp_files(tmp_path, names=["mesh.json", "texture.png"])
    assert sorted(path.name for path in removed) == sorted(own)
    assert all((tmp_path / name).exists() for name in others)
    assert remove_temp_files(tmp_path / "missing", names=["mesh.json"]) == []
