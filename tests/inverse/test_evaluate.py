"""Evaluation: a perfect prediction scores perfectly, a known-bad one scores as badly as it should, and the
eval command writes its metrics and turntable sheet."""

import json

import pytest
import torch

from ganverse3d.cli import main
from ganverse3d.dataset import MultiViewDataset
from ganverse3d.geometry import Camera, azimuth_bins, template_sphere
from ganverse3d.inverse.evaluate import chamfer_distance, evaluate, sample_surface, view_consistency
from ganverse3d.inverse.model import InverseGraphicsNet, Prediction
from ganverse3d.inverse.train import TrainConfig, train

from inverse_helpers import ellipsoid_content


class Oracle(InverseGraphicsNet):
    """Answers with the dataset's own truth for each image (found by pixel match), optionally spoilt."""

    def __init__(self, folder, azimuth_offset=0.0, shape=None):
        super().__init__(resolution=32, texture_height=8, feature_dim=8, base_channels=4, max_channels=4,
                         texture_channels=4, fov_y=30.0)
        dataset = MultiViewDataset(folder)
        self.images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
        self.truth = [(dataset[i]["content_id"], dataset[i]["camera"]) for i in range(len(dataset))]
        self.azimuth_offset, self.shape = azimuth_offset, shape

    def forward(self, image, mask=None):
        verts, textures, cameras = [], [], []
        for single in image:
            index = int((self.images - single).abs().flatten(1).sum(1).argmin())
            content, camera = self.truth[index]
            true_verts, texture = ellipsoid_content(content)
            verts.append(true_verts if self.shape is None else self.shape)
            textures.append(texture)
            cameras.append(camera + torch.tensor([self.azimuth_offset, 0.0, 0.0, 0.0]))
        verts, cameras = torch.stack(verts), torch.stack(cameras)
        return Prediction(verts=verts, texture=torch.stack(textures), camera=Camera(*cameras.unbind(-1)),
                          offsets=torch.zeros_like(verts), scale=torch.ones(len(verts), 3),
                          translation=torch.zeros(len(verts), 3), camera_vector=torch.zeros(len(verts), 4))


def test_a_perfect_prediction_scores_perfectly(multiview_dataset, tmp_path):
    metrics = evaluate(Oracle(multiview_dataset), multiview_dataset, out=tmp_path, device="cpu", progress=False)
    assert metrics["images"] == 12 and metrics["split"] == "all"
    assert metrics["iou"] == 1.0
    assert metrics["iou_predicted_camera"] == 1.0 and metrics["iou_searched_camera"] == 1.0
    assert metrics["azimuth_error_deg"] == 0.0 and metrics["azimuth_error_searched_deg"] == 0.0  # ties keep the estimate
    assert metrics["iou_novel_views"] == 1.0
    assert metrics["chamfer"] == 0.0
    # Every view of a content gives its one true shape; the contents differ.
    assert metrics["view_consistency_within_content"] == 0.0 and metrics["view_consistency_ratio"] == 0.0
    assert metrics["view_consistency_between_contents"] > 0.001
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert (tmp_path / "turntables.png").is_file()


def test_a_known_bad_prediction_scores_badly(multiview_dataset):
    sphere = template_sphere().verts * 0.5
    metrics = evaluate(Oracle(multiview_dataset, azimuth_offset=90.0, shape=sphere), multiview_dataset,
                       device="cpu", turntables=0, progress=False)
    assert metrics["azimuth_error_deg"] == pytest.approx(90.0, abs=1e-3)
    assert metrics["azimuth_error_deg_median"] == pytest.approx(90.0, abs=1e-3)
    assert metrics["iou"] < 0.8
    assert metrics["iou_novel_views"] < 0.8
    assert metrics["chamfer"] > 0.05
    # A right shape seen from the wrong camera: the dataset-camera IoU stays perfect, the predicted one drops.
    turned = evaluate(Oracle(multiview_dataset, azimuth_offset=90.0), multiview_dataset, device="cpu", turntables=0,
                      progress=False)
    assert turned["iou"] == 1.0 and turned["chamfer"] == 0.0
    assert turned["iou_predicted_camera"] < 0.8
    # The azimuth search turns the estimate by at most 10 degrees, towards the truth.
    assert 80.0 - 1e-3 <= turned["azimuth_error_searched_deg"] <= 90.0 + 1e-3
    assert turned["iou_searched_camera"] >= turned["iou_predicted_camera"]


def test_metrics_by_input_azimuth_bin(multiview_dataset):
    dataset = MultiViewDataset(multiview_dataset)
    expected_bins = [int(azimuth_bins(dataset[i]["camera"][:1])) for i in range(len(dataset))]
    metrics = evaluate(Oracle(multiview_dataset, azimuth_offset=90.0, shape=template_sphere().verts * 0.5),
                       multiview_dataset, device="cpu", turntables=0, progress=False)
    by_bin = metrics["by_azimuth_bin"]
    assert {int(b): row["images"] for b, row in by_bin.items()} == {b: expected_bins.count(b) for b in set(expected_bins)}
    for name in ("iou", "iou_novel_views", "chamfer"):  # the bins' image-weighted means give the overall mean
        assert sum(row[name] * row["images"] for row in by_bin.values()) / metrics["images"] == pytest.approx(
            metrics[name], abs=1e-5)
    assert all(row["azimuth_error_deg"] == pytest.approx(90.0, abs=1e-3) for row in by_bin.values())



def test_chamfer_of_known_point_sets():
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert chamfer_distance(points, points) == 0.0
    # Each point of the shifted set is 0.1 from its nearest partner, both ways: 0.01 + 0.01.
    assert chamfer_distance(points, points + torch.tensor([0.0, 0.1, 0.0])) == pytest.approx(0.02)
    mesh = template_sphere()
    samples = sample_surface(mesh.verts, mesh.faces, 500)
    assert samples.norm(dim=1).max() <= 1.0 + 1e-5 and samples.norm(dim=1).min() > 0.95  # on the icosphere


def test_evaluation_can_take_the_first_contents_only(multiview_dataset):
    model = Oracle(multiview_dataset)
    metrics = evaluate(model, multiview_dataset, device="cpu", turntables=0, max_contents=1, progress=False)
    assert (metrics["contents"], metrics["images"]) == (1, 4)
    assert metrics.get("view_consistency_ratio") is None   # one car: nothing to compare across cars


def test_view_consistency_of_shapes_that_follow_the_car_or_the_view():
    # Content c from view v: one point at x = c + 0.1 v. Two views of a content lie 0.1 apart (Chamfer 2 x 0.01),
    # two contents in a view 1 apart (2 x 1).
    content_ids, view_ids = [0, 0, 1, 1], [0, 1, 0, 1]
    points = [torch.tensor([[c + 0.1 * v, 0.0, 0.0]]) for c, v in zip(content_ids, view_ids)]
    result = view_consistency(points, content_ids, view_ids, max_pairs=50)
    assert result["view_consistency_within_content"] == pytest.approx(0.02)
    assert result["view_consistency_between_contents"] == pytest.approx(2.0)
    assert result["view_consistency_ratio"] == pytest.approx(0.01)
    # Shapes that follow only the view: every content looks alike from one view.
    by_view = [torch.tensor([[float(v), 0.0, 0.0]]) for v in view_ids]
    result = view_consistency(by_view, content_ids, view_ids, max_pairs=50)
    assert result["view_consistency_within_content"] == pytest.approx(2.0)
    assert result["view_consistency_between_contents"] == 0.0 and result["view_consistency_ratio"] is None
    # Sampled pairs where there are more than max_pairs: the same means here, where all pairs of a kind agree.
    sampled = view_consistency(points, content_ids, view_ids, max_pairs=1)
    assert sampled["view_consistency_within_content"] == pytest.approx(0.02)
    # One view per content: nothing to compare.
    assert view_consistency(points[:1] + points[3:], [0, 1], [0, 1]) is None


def test_eval_command_uses_the_held_out_split_of_its_training_data(multiview_dataset, tmp_path, capsys):
    config = TrainConfig(data=str(multiview_dataset), iterations=1, batch=2, resolution=16, texture_height=4,
                         holdout_fraction=0.3)
    bundle = train(config, runs_root=tmp_path / "runs", device="cpu", progress=False)
    out = tmp_path / "eval"
    assert main(["inverse", "eval", "--model", str(bundle), "--data", str(multiview_dataset), "--out", str(out),
                 "--turntables", "2", "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "heldout" and metrics["contents"] == 1 and metrics["images"] == 4
    assert metrics["camera_source"] == "learned view cameras"
    assert 0 <= metrics["iou"] <= 1 and "chamfer" in metrics
    assert "input-view IoU" in capsys.readouterr().out
    sheet = (out / "turntables.png")
    from PIL import Image
    with Image.open(sheet) as image:   # 2 items x (prediction row + true row) of 7 tiles of 128 px
        assert image.size == (7 * 128 + 6 * 2, 4 * 128 + 3 * 2)


def test_eval_command_refuses_a_missing_model(multiview_dataset, tmp_path, capsys):
    assert main(["inverse", "eval", "--model", str(tmp_path / "none.safetensors"), "--data",
                 str(multiview_dataset)]) == 2
    assert "does not exist" in capsys.readouterr().err
