"""The part segmenter: the U-Net with one logit per class, its readers, trainer, CLI and scores."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ganverse3d.cli import main
from ganverse3d.dataset.segment import WorldSegmenter, WorldSegmenterNet
from ganverse3d.parts import CLASSES
from ganverse3d.parts.annotations import label_png_bytes
from ganverse3d.parts.interpreter import class_weights
from ganverse3d.parts.segmenter import load_part_images, part_scores, train_part_segmenter


def toy_item(index: int) -> tuple[np.ndarray, np.ndarray]:
    """A 16 x 16 image and its labels: a grey background, a blue box (body) with a cyan window inside and a dark
    wheel below it, shifted with the index; the colours decide the labels."""
    labels = np.zeros((16, 16), dtype=np.uint8)
    left = index % 4
    labels[4:11, left:left + 11] = 1
    labels[5:7, left + 3:left + 8] = 2
    labels[11:14, left + 2:left + 5] = 3
    colours = np.array([[128, 128, 128], [40, 60, 200], [120, 230, 240], [20, 20, 20]], dtype=np.uint8)
    return colours[labels], labels


def write_toy_folder(folder, count: int, encoding: str) -> None:
    """``count`` toy items with labels in ``parts/`` as a world dataset (grey) or a parts synth dataset
    (indexed), or in ``labels/`` as an annotation folder painted in RGB."""
    from ganverse3d.parts import PALETTE

    label_dir = folder / ("labels" if encoding == "rgb" else "parts")
    (folder / "images").mkdir(parents=True)
    label_dir.mkdir()
    for index in range(count):
        image, labels = toy_item(index)
        Image.fromarray(image).save(folder / "images" / f"{index:06d}.png")
        if encoding == "grey":
            Image.fromarray(labels, mode="L").save(label_dir / f"{index:06d}.png")
        elif encoding == "indexed":
            (label_dir / f"{index:06d}.png").write_bytes(label_png_bytes(labels))
        else:
            Image.fromarray(np.asarray(PALETTE, dtype=np.uint8)[labels]).save(label_dir / f"{index:06d}.png")


def test_multi_class_net_shape_and_the_shipped_car_segmenter_still_loads():
    net = WorldSegmenterNet(resolution=16, width=4, classes=len(CLASSES))
    assert net(torch.rand(2, 3, 16, 24)).shape == (2, 7, 16, 24)
    assert WorldSegmenterNet(resolution=16, width=4)(torch.rand(1, 3, 16, 16)).shape == (1, 1, 16, 16)
    shipped = WorldSegmenter.from_file()
    assert shipped.net.classes == 1 and shipped.probability(torch.rand(1, 3, 64, 64)).shape == (1, 64, 64)


@pytest.mark.parametrize("encoding", ["grey", "indexed", "rgb"])
def test_labels_read_the_same_from_every_folder_encoding(tmp_path, encoding):
    write_toy_folder(tmp_path / "data", 3, encoding)
    images, labels = load_part_images(tmp_path / "data")
    assert images.shape == (3, 3, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(labels, torch.from_numpy(np.stack([toy_item(i)[1] for i in range(3)])).long())
    small_images, small_labels = load_part_images(tmp_path / "data", resolution=8)
    # Labels resize by nearest: the lower-right pixel of each 2 x 2 block.
    assert small_images.shape == (3, 3, 8, 8) and torch.equal(small_labels, labels[:, 1::2, 1::2])


def test_the_net_overfits_a_tiny_set():
    torch.manual_seed(0)
    items = [toy_item(i) for i in range(4)]
    images = torch.from_numpy(np.stack([image for image, _ in items])).permute(0, 3, 1, 2).float() / 255
    labels = torch.from_numpy(np.stack([label for _, label in items])).long()
    net = WorldSegmenterNet(resolution=16, width=8, classes=len(CLASSES))  # width 4 loses the thin classes
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    assert torch.equal(net(images).argmax(1), labels)  # in training mode: the batch's statistics


def test_train_segmenter_run_writes_a_bundle_scores_and_samples(tmp_path, capsys):
    write_toy_folder(tmp_path / "data", 8, "indexed")
    out = tmp_path / "seg.safetensors"
    assert main(["parts", "train-segmenter", "--data", str(tmp_path / "data"), "--out", str(out), "--resolution",
                 "16", "--width", "4", "--epochs", "2", "--batch", "4", "--holdout", "0", "--runs",
                 str(tmp_path / "runs"), "--device", "cpu"]) == 0
    assert "mIoU" in capsys.readouterr().out
    run = next((tmp_path / "runs" / "parts-segmenter").iterdir())
    assert list((run / "samples").glob("*.png"))
    assert main(["parts", "eval-segmenter", "--data", str(tmp_path / "data"), "--segmenter", str(out)]) == 0
    assert "(8 images): mIoU" in capsys.readouterr().out
    scores = train_part_segmenter(None, tmp_path / "again.safetensors", device="cpu", progress=False, resume=run)
    assert scores["scored"] == "training" and scores["count"] == 8 and set(scores["per_class"]) == set(CLASSES)


@pytest.mark.parametrize("case", ["no_folder", "no_labels", "holdout", "car_segmenter"])
def test_train_segmenter_bad_input_exits_2_with_one_sentence(case, tmp_path, capsys):
    write_toy_folder(tmp_path / "data", 2, "grey")
    (tmp_path / "images_only" / "images").mkdir(parents=True)
    Image.fromarray(toy_item(0)[0]).save(tmp_path / "images_only" / "images" / "000000.png")
    car = tmp_path / "car.safetensors"
    from ganverse3d.bundle import save_module

    save_module(car, WorldSegmenterNet(resolution=16, width=4))
    out = tmp_path / "out" / "seg.safetensors"
    train = ["parts", "train-segmenter", "--out", str(out), "--runs", str(tmp_path / "out" / "runs"), "--data"]
    command, message = {
        "no_folder": (train + [str(tmp_path / "missing")], "has no images/ folder"),
        "no_labels": (train + [str(tmp_path / "images_only")], "no parts/ or labels/"),
        "holdout": (train + [str(tmp_path / "data"), "--holdout", "1"], "--holdout must lie in [0, 1)"),
        "car_segmenter": (["parts", "eval-segmenter", "--data", str(tmp_path / "data"), "--segmenter", str(car)],
                          "is a car segmenter, not a part segmenter"),
    }[case]
    capsys.readouterr()
    assert main(command) == 2
    error = capsys.readouterr().err
    assert error.startswith("Error: ") and error.count("\n") == 1 and message in error, error
    assert not out.exists() and not (tmp_path / "out" / "runs").exists()


def test_part_scores_on_a_hand_computed_case():
    truth = torch.tensor([[[0, 1, 1], [0, 3, 3]]])
    predicted = torch.tensor([[[0, 1, 3], [1, 3, 3]]])
    scores = part_scores(predicted, truth)
    # background: 1 of 2 in the union; body: 1 of 3; wheel: 2 of 3; the other classes are in neither.
    assert scores["per_class"]["background"] == pytest.approx(1 / 2)
    assert scores["per_class"]["body"] == pytest.approx(1 / 3)
    assert scores["per_class"]["wheel"] == pytest.approx(2 / 3)
    assert scores["per_class"]["plate"] is None
    assert scores["miou"] == pytest.approx((1 / 2 + 1 / 3 + 2 / 3) / 3)
    assert scores["miou_parts"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert scores["accuracy"] == pytest.approx(4 / 6) and scores["count"] == 1


def test_part_scores_of_the_benchmarks_trivial_row():
    """bm_parts.py's free row: every pixel of the true car mask body. Truth: 2 background, 2 body, 2 wheel."""
    truth = torch.tensor([[[0, 1, 1], [0, 3, 3]]])
    scores = part_scores((truth > 0).long(), truth)
    assert scores["per_class"]["background"] == 1 and scores["per_class"]["body"] == pytest.approx(2 / 4)
    assert scores["per_class"]["wheel"] == 0
    assert scores["miou"] == pytest.approx((1 + 1 / 2 + 0) / 3) and scores["miou_parts"] == pytest.approx(1 / 4)


def test_class_weights_on_a_hand_computed_case():
    labels = torch.tensor([[[0, 0, 0, 1]]])  # background 3/4, body 1/4, the rest absent (one pixel each)
    weights = class_weights(labels, 0.5)
    assert weights[1] / weights[0] == pytest.approx(3 ** 0.5)
    assert torch.equal(class_weights(labels, 0.0), torch.ones(7))


def test_interpreter_balance_is_checked():
    from ganverse3d.errors import InputError
    from ganverse3d.parts.train import InterpreterTrainConfig

    InterpreterTrainConfig(annotations="a", balance=0.5).check()
    with pytest.raises(InputError, match="balance must lie in"):
        InterpreterTrainConfig(annotations="a", balance=1.5).check()
