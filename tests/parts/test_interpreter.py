"""The style interpreter: pixel features, majority vote, the JS uncertainty, and learning a known labelling."""

import math

import pytest
import torch
import torch.nn.functional as F

from ganverse3d.dataset.synth import content_codes
from ganverse3d.parts import (CLASSES, StyleInterpreter, feature_dims, image_uncertainty, js_divergence,
                              majority_vote, pixel_features)
from ganverse3d.parts.synth import load_interpreter
from ganverse3d.parts.train import InterpreterTrainConfig, train_interpreter

from parts_helpers import known_labels, tiny_generator


def test_features_are_every_conv_layer_upsampled_bilinearly_and_cut_to_the_content():
    G = tiny_generator()
    ws = content_codes(G, 1, range(3), 0.7)
    features, images = pixel_features(G, ws, return_image=True)
    dims = feature_dims(G)
    assert dims == [16, 16, 16, 8, 8] and features.shape == (3, sum(dims), 12, 16)
    assert images.shape == (3, 3, 12, 16)
    torch.testing.assert_close(images, ((G.synthesis(ws) + 1) / 2).clamp(0, 1)[..., 2:14, :])
    maps = G.synthesis.features(ws)
    start = 0
    for layer, dim in zip(maps, dims):
        expected = F.interpolate(layer, size=(16, 16), mode="bilinear", align_corners=False)[..., 2:14, :]
        torch.testing.assert_close(features[:, start:start + dim], expected)
        start += dim
    # The last layer is at full resolution: its features are the layer's output itself.
    torch.testing.assert_close(features[:, -8:], maps[-1][..., 2:14, :])


def test_the_features_api_leaves_the_images_unchanged():
    G = tiny_generator()
    ws = content_codes(G, 2, range(2), 0.7)
    maps, image = G.synthesis.features(ws, return_image=True)
    assert torch.equal(image, G.synthesis(ws)) and len(maps) == len(G.synthesis.conv_layer_names)


def test_majority_vote_takes_the_most_voted_class_and_the_lowest_on_a_tie():
    votes = torch.tensor([[0, 1, 2, 3],
                          [1, 1, 2, 3],
                          [2, 0, 1, 1]])
    assert majority_vote(votes, 4).tolist() == [0, 1, 2, 3]
    assert majority_vote(votes[:, None], 4).shape == (1, 4)


def test_js_uncertainty_on_a_hand_computed_case():
    # Two members at one pixel: certain of class 0, and undecided between 0 and 1.
    # mean = (0.75, 0.25); H(mean) = -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.562335; mean H = (0 + ln 2) / 2 = 0.346574.
    disputed = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    agreed = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) - math.log(2) / 2
    assert expected == pytest.approx(0.215762, abs=1e-6)
    pixel = disputed[:, None, :, None, None]                      # [M=2, B=1, C=2, 1, 1]
    assert js_divergence(pixel).item() == pytest.approx(expected, abs=1e-6)
    # An image of 20 pixels, one disputed: its 10 % most uncertain are 2 pixels, the disputed one and a calm one.
    image = agreed[:, None, :, None, None].repeat(1, 1, 1, 4, 5)
    image[:, 0, :, 1, 2] = disputed
    assert js_divergence(image)[0, 1, 2].item() == pytest.approx(expected, abs=1e-6)
    assert image_uncertainty(image).item() == pytest.approx(expected / 2, abs=1e-6)
    # Two members that agree exactly have no uncertainty; 10 pixels make a top tenth of one pixel.
    assert image_uncertainty(agreed[:, None, :, None, None].repeat(1, 1, 1, 2, 5)).item() == pytest.approx(0, abs=1e-7)
    assert image_uncertainty(image[..., :2, :5]).item() == pytest.approx(expected, abs=1e-6)


def test_the_interpreter_learns_a_labelling_that_is_a_known_function_of_the_image(painted_annotations, generator_file,
                                                                                   tmp_path):
    config = InterpreterTrainConfig(annotations=str(painted_annotations), generator=str(generator_file), members=3,
                                    steps=1500, patience=300, checkpoint_every=10**6, log_every=100)
    provenance = train_interpreter(config, tmp_path / "interpreter.safetensors", device="cpu", progress=False,
                                   runs_root=tmp_path / "runs")
    assert provenance["fit"]["accuracy"] > 0.95
    interpreter = load_interpreter(tmp_path / "interpreter.safetensors")
    assert isinstance(interpreter, StyleInterpreter) and len(interpreter.members) == 3
    assert interpreter.class_names == list(CLASSES)
    # New images, never annotated: the labels follow the rule far above the largest class's share.
    G = tiny_generator()
    features, images = pixel_features(G, content_codes(G, 99, range(16), 0.7), return_image=True)
    labels, uncertainty = interpreter.label(features)
    truth = known_labels(images)
    largest_share = torch.bincount(truth.flatten()).max().item() / truth.numel()
    accuracy = (labels == truth).float().mean().item()
    assert largest_share < 0.5 and accuracy > 0.75, (accuracy, largest_share)
    assert uncertainty.shape == (16,) and (uncertainty >= 0).all()
    # Untrained members of the same ensemble do not know the rule.
    untrained = StyleInterpreter(feature_dims(G), list(CLASSES), 3).eval()
    assert (untrained.label(features)[0] == truth).float().mean().item() < 0.6
