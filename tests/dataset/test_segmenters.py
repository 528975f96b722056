"""Segmenters: connected components, the world U-Net path, torchvision Mask R-CNN from a local file (no
download), spec errors, the train / eval commands and the shipped world segmenter's quality."""

import importlib.util
import json
from collections import deque

import numpy as np
import pytest
import torch

from ganverse3d import assets
from ganverse3d.bundle import load_module, read_metadata
from ganverse3d.cli import main
from ganverse3d.dataset.segment import (
    COCO_CAR, MaskRCNNSegmenter, WorldSegmenter, WorldSegmenterNet, connected_components,
    instances_from_probabilities, instances_from_probability, load_segmenter)
from ganverse3d.dataset.train_segmenter import evaluate_segmenter
from ganverse3d.errors import InputError
from ganverse3d.world import render_items


def components_by_search(mask: np.ndarray) -> np.ndarray:
    """Reference labelling: breadth-first search over 8-neighbours, labelled by each component's first pixel."""
    height, width = mask.shape
    labels = np.full(mask.shape, -1, dtype=np.int64)
    for start in range(height * width):
        row, column = divmod(start, width)
        if not mask[row, column] or labels[row, column] >= 0:
            continue
        labels[row, column] = start
        queue = deque([(row, column)])
        while queue:
            r, c = queue.popleft()
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < height and 0 <= cc < width and mask[rr, cc] and labels[rr, cc] < 0:
                        labels[rr, cc] = start
                        queue.append((rr, cc))
    return labels


@pytest.mark.parametrize("density", [0.2, 0.45, 0.6, 0.9])
def test_connected_components_match_a_breadth_first_search(density):
    generator = torch.Generator().manual_seed(int(density * 100))
    mask = torch.rand(23, 31, generator=generator) < density
    assert np.array_equal(connected_components(mask).numpy(), components_by_search(mask.numpy()))


def test_a_serpentine_is_one_component():
    # One path winding through the whole image: the worst case for plain label propagation.
    mask = torch.zeros(31, 31, dtype=torch.bool)
    mask[::2] = True
    mask[1::4, -1] = True
    mask[3::4, 0] = True
    labels = connected_components(mask)
    assert set(labels.unique().tolist()) == {-1, 0}
    mask[2, 5] = False  # cut the path: two components
    assert np.array_equal(connected_components(mask).numpy(), components_by_search(mask.numpy()))
    assert len(connected_components(mask).unique()) == 3


def test_instances_are_the_large_components_sorted_by_score():
    probability = torch.zeros(40, 40)
    probability[2:12, 2:12] = 0.7     # 100 px, score 0.7
    probability[20:35, 20:35] = 0.95  # 225 px, score 0.95
    probability[38, 0] = 0.99         # a 1-px speck, under 1 % of the image
    instances = instances_from_probability(probability, threshold=0.5, min_instance_area=0.01)
    assert len(instances) == 2
    assert torch.allclose(instances.scores, torch.tensor([0.95, 0.7]))
    assert instances.masks.dtype == torch.bool and instances.masks.shape == (2, 40, 40)
    assert instances.masks[0].sum() == 225 and instances.masks[0, 25, 25] and instances.masks[1, 5, 5]
    assert len(instances_from_probability(torch.zeros(8, 8))) == 0


def test_a_batch_is_labelled_image_by_image():
    # Image 0 has a car along its bottom edge, image 1 along its top edge, image 2 none, image 3 two cars:
    # stacked, the first two would touch, yet each image keeps its own single car.
    probability = torch.zeros(4, 10, 12)
    probability[0, 7:, 2:9] = 0.9
    probability[1, :3, 2:9] = 0.8
    probability[3, :4, :4] = probability[3, 6:, 6:] = 0.7
    found = instances_from_probabilities(probability)
    assert [len(instances) for instances in found] == [1, 1, 0, 2]
    assert torch.equal(found[0].masks[0], probability[0] > 0.5) and torch.equal(found[1].masks[0], probability[1] > 0.5)
    assert all(instances.masks.shape[1:] == (10, 12) for instances in found)


def test_world_segmenter_returns_masks_at_the_input_resolution():
    torch.manual_seed(0)
    net = WorldSegmenterNet(resolution=32, width=4)
    with torch.no_grad():
        net.head.bias.fill_(10.0)  # every pixel is car: one instance covering the whole image
    segmenter = WorldSegmenter(net)
    found = segmenter.segment(torch.rand(3, 3, 24, 40))
    assert len(found) == 3
    for instances in found:
        assert instances.masks.shape == (1, 24, 40) and bool(instances.masks.all())
        assert 0.99 < float(instances.scores[0]) <= 1


@pytest.fixture(scope="module")
def maskrcnn_weights(tmp_path_factory):
    """torchvision's Mask R-CNN, randomly initialised (nothing downloaded), its class head biased to "car"."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.zero_()
        model.roi_heads.box_predictor.cls_score.bias.zero_()
        model.roi_heads.box_predictor.cls_score.bias[COCO_CAR] = 20.0
    path = tmp_path_factory.mktemp("maskrcnn") / "maskrcnn.pth"
    torch.save(model.state_dict(), path)
    return path


def test_maskrcnn_from_a_local_state_dict_finds_cars(maskrcnn_weights):
    segmenter = MaskRCNNSegmenter(maskrcnn_weights, min_size=64)
    found = segmenter.segment(torch.rand(2, 3, 48, 64, generator=torch.Generator().manual_seed(0)))
    assert len(found) == 2
    for instances in found:
        assert len(instances) >= 1
        assert instances.masks.dtype == torch.bool and instances.masks.shape[1:] == (48, 64)
        assert instances.scores.shape == (len(instances),) and bool((instances.scores >= 0.5).all())
        assert bool((instances.scores[:-1] >= instances.scores[1:]).all())
    assert segmenter.description()["kind"] == "maskrcnn" and len(segmenter.description()["sha256"]) == 64


def test_maskrcnn_ignores_other_classes(maskrcnn_weights, tmp_path):
    state = torch.load(maskrcnn_weights, weights_only=True)
    state["roi_heads.box_predictor.cls_score.bias"][COCO_CAR] = 0.0
    state["roi_heads.box_predictor.cls_score.bias"][COCO_CAR + 1] = 20.0  # everything is a motorcycle
    path = tmp_path / "motorcycles.pth"
    torch.save(state, path)
    found = MaskRCNNSegmenter(path, min_size=64).segment(torch.rand(1, 3, 48, 64))
    assert len(found[0]) == 0


def test_maskrcnn_weights_must_exist_and_fit(tmp_path):
    missing = tmp_path / "maskrcnn_resnet50_fpn_coco.pth"
    with pytest.raises(InputError, match=str(missing)):
        load_segmenter(f"maskrcnn:{missing}")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(InputError, match="not a readable torch state dict"):
        MaskRCNNSegmenter(junk)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(InputError, match="maskrcnn_resnet50_fpn"):
        MaskRCNNSegmenter(other)


@pytest.mark.skipif(importlib.util.find_spec("detectron2") is not None, reason="detectron2 is installed")
def test_detectron2_without_the_package_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="needs detectron2"):
        load_segmenter(f"detectron2:{tmp_path / 'model_final.pkl'}")


@pytest.mark.parametrize("spec", ["mask-rcnn:x.pth", "maskrcnn", "detectron2:", "unet"])
def test_unknown_segmenter_specs(spec):
    with pytest.raises(InputError, match="Unknown segmenter"):
        load_segmenter(spec)


def test_missing_world_segmenter_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_segmenter(f"world:{tmp_path / 'none.safetensors'}")


def test_segmenter_commands_train_a_loadable_bundle_and_score_it(tmp_path):
    data = tmp_path / "world"
    assert main(["world", "render", "--n", "20", "--resolution", "32", "--seed", "5", "--out", str(data)]) == 0
    out, runs_root = tmp_path / "seg.safetensors", str(tmp_path / "runs")
    assert main(["segmenter", "train", "--data", str(data), "--out", str(out), "--resolution", "32", "--width", "4",
                 "--epochs", "1", "--batch", "8", "--seed", "0", "--device", "cpu", "--runs", runs_root]) == 0
    net = load_module(out, expected_class=WorldSegmenterNet)
    assert net.resolution == 32 and sum(p.numel() for p in net.parameters()) < 250_000
    metadata = read_metadata(out)
    assert metadata["provenance"]["stage"] == "segmenter" and metadata["provenance"]["holdout"]["count"] == 2
    assert metadata["config"]["epochs"] == 1
    assert main(["segmenter", "eval", "--data", str(data), "--segmenter", f"world:{out}", "--device", "cpu"]) == 0
    assert main(["segmenter", "train", "--data", str(data), "--out", str(tmp_path / "seg.pt")]) == 2
    assert main(["segmenter", "train", "--data", str(tmp_path / "empty"), "--out", str(out), "--runs", runs_root]) == 2
    assert [path.name for path in (tmp_path / "runs" / "segmenter").iterdir()] == ["00000-world-r32"]
    # A resume keeps the epochs (the learning-rate schedule spans them); resuming the finished run copies its bundle.
    run_dir, two = tmp_path / "runs" / "segmenter" / "00000-world-r32", tmp_path / "two.safetensors"
    assert main(["segmenter", "train", "--resume", str(run_dir), "--epochs", "2", "--out", str(two),
                 "--device", "cpu"]) == 2
    assert not two.exists() and json.loads((run_dir / "config.json").read_text())["epochs"] == 1
    assert main(["segmenter", "train", "--resume", str(run_dir), "--out", str(two), "--device", "cpu"]) == 0
    assert two.read_bytes() == out.read_bytes()


def test_evaluation_scores_a_perfect_and_a_blind_segmenter():
    masks = torch.zeros(4, 16, 16, dtype=torch.bool)
    masks[:, 4:12, 3:13] = True
    images = masks[:, None].expand(-1, 3, -1, -1).to(torch.uint8) * 255

    class Oracle:
        def segment(self, batch):
            return [instances_from_probability(image[0]) for image in batch]

    class Blind:
        def segment(self, batch):
            return [instances_from_probability(torch.zeros(16, 16)) for _ in batch]

    assert evaluate_segmenter(Oracle(), images, masks) == {"count": 4, "iou_mean": 1.0, "single_instance_rate": 1.0}
    assert evaluate_segmenter(Blind(), images, masks) == {"count": 4, "iou_mean": 0.0, "single_instance_rate": 0.0}


@pytest.mark.skipif(not assets.lookup("segmenter").path.is_file(), reason="the embedded world segmenter is not built yet")
def test_the_embedded_world_segmenter_finds_one_accurate_car_in_fresh_world_renders():
    _, _, render = render_items(seed=991, indices=range(24), resolution=64)
    images = (render.images * 255).round().to(torch.uint8)
    evaluation = evaluate_segmenter(load_segmenter("world"), images, render.masks[:, 0] > 0.5)
    assert evaluation["iou_mean"] > 0.9 and evaluation["single_instance_rate"] >= 0.9


def test_augmentation_on_two_ranks_is_the_global_batchs_shared_out():
    from ganverse3d.dataset.train_segmenter import augment

    images, targets = torch.rand(6, 3, 16, 16), (torch.rand(6, 1, 16, 16) > 0.5).float()
    whole = augment(images, targets, torch.Generator().manual_seed(3))
    for rank in range(2):
        rows = slice(rank, None, 2)  # distributed.shard's rows of rank r of 2
        share = augment(images[rows], targets[rows], torch.Generator().manual_seed(3), lambda t: t[rows], 2)
        for got, expected in zip(share, whole):
            torch.testing.assert_close(got, expected[rows], rtol=0, atol=1e-6)
