"""`ganverse3d parts annotate | train | synth`: the round trip, resuming, and bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from ganverse3d.cli import main
from ganverse3d.parts import CLASSES, PALETTE

from parts_helpers import paint_known_labels


def files_under(folder) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_annotate_train_synth_round_trip(tmp_path, generator_file, capsys):
    ann = tmp_path / "ann"
    assert main(["parts", "annotate", "--generator", str(generator_file), "--n", "16", "--out", str(ann)]) == 0
    assert sorted(p.name for p in (ann / "images").iterdir()) == [f"{i:06d}.png" for i in range(16)]
    template = Image.open(ann / "labels" / "000003.png")
    assert template.mode == "P" and template.size == (16, 12) and not np.asarray(template).any()
    assert np.array_equal(np.asarray(template.getpalette()[:3 * len(PALETTE)]).reshape(-1, 3), np.asarray(PALETTE))
    assert Image.open(ann / "legend.png").size[1] > 20 * len(CLASSES)
    manifest = json.loads((ann / "manifest.json").read_text())
    assert manifest["classes"] == list(CLASSES) and manifest["count"] == 16
    paint_known_labels(ann)
    # Painted in an editor that saves RGB: the same labels read back by the nearest palette colour.
    labels = np.asarray(Image.open(ann / "labels" / "000001.png"))
    Image.fromarray(np.asarray(PALETTE, dtype=np.uint8)[labels]).save(ann / "labels" / "000001.png")

    interpreter = tmp_path / "interpreter.safetensors"
    assert main(["parts", "train", "--annotations", str(ann), "--generator", str(generator_file), "--out",
                 str(interpreter), "--members", "2", "--steps", "300", "--patience", "300",
                 "--runs", str(tmp_path / "runs"), "--device", "cpu"]) == 0
    assert "pixel accuracy" in capsys.readouterr().out
    run = next((tmp_path / "runs" / "parts").iterdir())
    assert (run / "config.json").is_file() and list((run / "samples").glob("*.png"))

    data = tmp_path / "data"
    synth = ["parts", "synth", "--generator", str(generator_file), "--interpreter", str(interpreter), "--n", "10",
             "--out", str(data), "--device", "cpu", "--batch", "4"]
    assert main(synth) == 0
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["complete"] and manifest["counts"] == {"generated": 10, "kept": 9, "filtered": 1}
    meta = [json.loads(line) for line in (data / "meta.jsonl").read_text().splitlines()]
    assert [m["id"] for m in meta] == list(range(10))
    dropped = [m for m in meta if not m["kept"]]
    assert len(dropped) == 1 and dropped[0]["uncertainty"] == max(m["uncertainty"] for m in meta)
    kept_names = sorted(f"{m['id']:06d}.png" for m in meta if m["kept"])
    assert sorted(p.name for p in (data / "images").iterdir()) == kept_names
    assert sorted(p.name for p in (data / "parts").iterdir()) == kept_names
    part = Image.open(data / "parts" / kept_names[0])
    assert part.mode == "P" and part.size == (16, 12) and np.asarray(part).max() < len(CLASSES)
    assert (data / "sheet.png").is_file() and not (data / ".meta").exists()

    # Rerunning changes nothing; an interrupted run (items missing, manifest incomplete) resumes to the same bytes.
    before = files_under(data)
    assert main(synth) == 0 and files_under(data) == before
    (data / "meta.jsonl").unlink()
    for name in kept_names[4:]:
        (data / "images" / name).unlink()
        (data / "parts" / name).unlink()
    records = data / ".meta"
    records.mkdir()
    for m in meta:
        if f"{m['id']:06d}.png" in kept_names[:4]:
            (records / f"{m['id']:06d}.json").write_text(json.dumps({"id": m["id"], "uncertainty": m["uncertainty"]}))
    assert main(synth) == 0 and files_under(data) == before
    # Extending keeps the first items' files.
    assert main([("20" if item == "10" else item) for item in synth]) == 0
    after = files_under(data)
    assert all(after[name] == before[name] for name in set(before) & set(after) if name.startswith(("images/", "parts/")))
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["counts"] == {"generated": 20, "kept": 18, "filtered": 2}


@pytest.mark.parametrize("case", ["annotate_not_empty", "annotate_n", "train_blank", "train_other_generator",
                                  "train_members", "synth_drop", "synth_other_generator", "synth_no_interpreter"])
def test_bad_input_exits_2_with_one_sentence_and_writes_nothing(case, tmp_path, generator_file,
                                                                 other_generator_file, painted_annotations, capsys):
    from ganverse3d.bundle import save_module
    from ganverse3d.parts import CLASSES, StyleInterpreter, feature_dims

    from parts_helpers import tiny_generator

    interpreter = tmp_path / "inputs" / "interpreter.safetensors"
    interpreter.parent.mkdir()
    save_module(interpreter, StyleInterpreter(feature_dims(tiny_generator()), list(CLASSES), 2))
    blank = tmp_path / "inputs" / "blank"
    main(["parts", "annotate", "--generator", str(generator_file), "--n", "2", "--out", str(blank)])
    out = tmp_path / "out"
    train = ["parts", "train", "--generator", str(generator_file), "--out", str(out / "i.safetensors"),
             "--runs", str(out / "runs"), "--annotations"]
    synth = ["parts", "synth", "--interpreter", str(interpreter), "--n", "3", "--out", str(out / "data"),
             "--generator"]
    command, message = {
        "annotate_not_empty": (["parts", "annotate", "--generator", str(generator_file), "--n", "2", "--out",
                                str(blank)], "not empty"),
        "annotate_n": (["parts", "annotate", "--generator", str(generator_file), "--n", "0", "--out", str(out)],
                       "--n must be at least 1"),
        "train_blank": (train + [str(blank)], "all background"),
        "train_other_generator": (["parts", "train", "--generator", str(other_generator_file), *train[4:],
                                   str(painted_annotations)], "does not remake"),
        "train_members": (train + [str(painted_annotations), "--members", "0"], "--members must be at least 1"),
        "synth_drop": (synth + [str(generator_file), "--drop", "1.5"], "--drop must be"),
        "synth_other_generator": (synth + [str(other_generator_file)], "give the generator it was trained with"),
        "synth_no_interpreter": (["parts", "synth", "--interpreter", str(tmp_path / "none.safetensors"), *synth[4:],
                                  str(generator_file)], "does not exist"),
    }[case]
    capsys.readouterr()
    before = files_under(tmp_path / "inputs")
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.startswith("Error: ") and error.count("\n") == 1 and message in error, error
    assert "Traceback" not in error
    assert not out.exists() or not any(path.is_file() for path in out.rglob("*"))
    assert files_under(tmp_path / "inputs") == before
