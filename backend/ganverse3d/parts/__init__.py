"""DatasetGAN part labels: a few annotated generator images -> a style interpreter that labels any generated image.

``interpreter.py`` (pixel features of the generator, the ensemble of pixel classifiers, majority vote, the
Jensen-Shannon uncertainty), ``annotations.py`` (annotation folders: images, codes and painted label files),
``train.py`` (the interpreter's trainer on the run kit), ``synth.py`` (a labelled dataset, the most uncertain
images dropped).
"""

from .interpreter import (CLASSES, PALETTE, PixelClassifier, StyleInterpreter, feature_dims, image_uncertainty,
                          js_divergence, majority_vote, mean_iou, pixel_features)

__all__ = ["CLASSES", "PALETTE", "PixelClassifier", "StyleInterpreter", "feature_dims", "image_uncertainty",
           "js_divergence", "majority_vote", "mean_iou", "pixel_features"]
