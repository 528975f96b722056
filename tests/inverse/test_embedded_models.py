"""The inverse-graphics models shipped in assets/ reconstruct world cars they never saw, and `--model NAME` picks
them. The floors sit below each model's Table 1 numbers (docs/experiments.md) by a margin for this small sample, and far
above what a wrongly loaded or wrongly framed model reaches (input-view IoU under 0.5)."""

import pytest

from ganverse3d.dataset.world_multiview import write_world_multiview
from ganverse3d.errors import InputError
from ganverse3d.inverse.evaluate import evaluate
from ganverse3d import assets


@pytest.fixture(scope="module")
def unseen_world_cars(tmp_path_factory):
    # No shipped model trained or was selected on world seed 1234 (their sets use 1, 7, 8, 21, 123, 998, 999).
    out = tmp_path_factory.mktemp("world") / "world-test-1234"
    write_world_multiview(out, cars=8, views=3, resolution=64, seed=1234, progress=False)
    return out


@pytest.mark.parametrize("name, input_view_floor, novel_view_floor", [("oracle", 0.88, 0.86), ("gan", 0.75, 0.75)])
def test_embedded_model_reconstructs_unseen_world_cars(unseen_world_cars, name, input_view_floor, novel_view_floor):
    metrics = evaluate(name, unseen_world_cars, device="cpu", turntables=0, progress=False)
    assert metrics["images"] == 24 and metrics["split"] == "all"
    assert metrics["iou"] > input_view_floor
    assert metrics["iou_novel_views"] > novel_view_floor


def test_model_names_resolve_to_the_shipped_files_and_anything_else_is_a_path(tmp_path):
    assert assets.resolve("inverse") == assets.resolve("inverse", "oracle") == assets.FOLDER / "inverse.safetensors"
    assert assets.resolve("inverse", "gan").name == "inverse_gan.safetensors"
    with pytest.raises(InputError, match="does not exist"):
        assets.resolve("inverse", tmp_path / "gan")
    with pytest.raises(InputError, match="does not exist"):
        assets.resolve("inverse", "nonesuch")
