"""Which W*_V dimensions the camera drives: the R^2 score against the annotated azimuths and the top-K choice."""

import pytest
import torch

from ganverse3d.neural.view_dims import top_view_dims, view_correlation


def test_a_sinusoid_of_the_azimuth_scores_1_and_a_constant_0():
    azimuths = torch.tensor([0.0, 30.0, 75.0, 150.0, 200.0, 290.0])
    radians = torch.deg2rad(azimuths)
    codes = torch.stack((2 * radians.sin() - 3 * radians.cos() + 5, torch.full_like(radians, 0.7)), dim=1)
    scores = view_correlation(codes, azimuths)
    assert scores[0].item() == pytest.approx(1.0, abs=1e-6)
    assert scores[1].item() == 0.0


def test_a_hand_computed_score():
    # Views at 0, 90, 180, 270: sin, cos and 1 span all but (1, -1, 1, -1). The column (1, 0, 0, 0) keeps its
    # projection on it, 1/2 along a unit vector: residual 1/4; about its mean 1/4 it varies by 3/4: R^2 = 2/3.
    scores = view_correlation(torch.tensor([[1.0], [0.0], [0.0], [0.0]]), torch.tensor([0.0, 90.0, 180.0, 270.0]))
    assert scores[0].item() == pytest.approx(2 / 3, abs=1e-6)


def test_top_view_dims_ascending_ties_to_the_lower_index():
    scores = torch.tensor([0.5, 0.9, 0.5, 0.1, 0.9])
    assert top_view_dims(scores, 3).tolist() == [0, 1, 4]
    assert top_view_dims(scores, 2).tolist() == [1, 4]
    assert top_view_dims(scores, 4).tolist() == [0, 1, 2, 4]
    assert top_view_dims(scores, 0).tolist() == []
