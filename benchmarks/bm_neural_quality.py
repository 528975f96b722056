"""StyleGAN-R measured with ground truth the paper never had (issue 19, section 2).

    python benchmarks/bm_neural_quality.py [--cars 8] [--models default] [--labels fine-tuned]
        [--fit-steps 200] [--figures ../docs]

Test set: held-out world cars (seed 999, as ``bm_generalisation.py``; no training used it), each rendered from 7
cameras; the first view is the photo, the other 6 are the new cameras. Photo -> ``reconstruct`` (the model the
StyleGAN-R was trained with, ``--quality fast``) -> StyleGAN-R at each new camera (its azimuth and elevation, the
reconstruction's distance and field of view: the scale of a car in one photo is unknowable). The truth is the
world's render from that camera, framed as the inverse network's training images frame a car of that azimuth
bin (``reconstruct`` frames photos alike) and resized to the generator's 64 px.

Metrics (means over every car and new camera):

* view control: the world pose net's azimuth and elevation error on the neural renders against the requested
  camera (its error on the true renders beside it: the reader's own);
* silhouette IoU of the neural render's mask (the world segmenter) against the true silhouette, and against
  the DIB-R render of the predicted mesh at the same camera (dual-renderer agreement);
* |RGB| (of 255) between the neural render and the truth over the pixels both masks cover;
* fid-world between all neural renders and all true renders (few images: compare rows, not papers);
* disentanglement (paper Fig. 10), over pairs of cars (a, b) in a's camera: after a texture swap the silhouette
  must stay (IoU to a's render); after a shape swap the colour must stay (|mean car colour| change, of 255);
  after a background swap the car's pixels must stay (|RGB| inside a's mask). The baseline (``other_car_*``) is
  b's own render in a's camera: what a swap that changed everything gets. A swap that changed nothing would keep
  everything, so more say whether a swap brought b's part: the shape-swapped silhouette's IoU to b's and to
  a's (it moved toward b where the first is the larger) and the texture-swapped colour's distance to b's
  (against ``other_car_colour``, a's); ``dims_*`` are the shares of W*_STB's dimensions whose mixing weight is
  largest for each property.

Rows: each ``--models`` StyleGAN-R (labels from ``--labels``), and baselines: the **input** (the photo itself for
every new camera: a renderer that ignores the camera), a **flat colour** (the input car's mean colour over the true
silhouette, for |RGB|), **DIB-R** (the predicted mesh rendered by the graphics renderer), and paper Fig. 8's
**W* fit**: the original StyleGAN's W* optimised to the photo by L2 (``--fit-steps`` Adam steps), then its view
entries replaced by the annotated view code nearest the requested azimuth. Prints a table, writes
benchmarks/results/bm_neural_quality.json, and with ``--figures DIR`` draws neural_dual.png (Fig. 7 / 9: input | DIB-R
| StyleGAN-R in the input's camera | StyleGAN-R at the 6 new cameras | the truth there), neural_swaps.png (Fig.
10: each car | its shape, texture, background from the first car) and neural_fit_baseline.png (Fig. 8: input | W*
fit | W* fit at 3 new cameras | StyleGAN-R there), for the first model.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from bm_generalisation import make_set
from common import machine, write_results

VIEWS = 7
SIZE = 64
VIEW_ANNOTATION = Path(__file__).resolve().parents[1] / "training" / "views-world64-L2" / "views.toml"


@dataclasses.dataclass
class Truth:
    """A new camera of a test car: the request and the framed true render at 64 px."""

    azimuth: float
    elevation: float
    image: torch.Tensor   # [3, 64, 64] in [0, 1]
    mask: torch.Tensor    # [64, 64] bool


def _framed(view, framing) -> tuple[torch.Tensor, torch.Tensor]:
    from ganverse3d.api import crop_box
    from ganverse3d.dataset.segment import crop_resize
    from ganverse3d.geometry import azimuth_bins

    view_bin = int(azimuth_bins(float(view.camera["azimuth"])))
    fill, centre = framing["bin_fill"][view_bin], framing["bin_centre"][view_bin]
    if fill is None:
        fill, centre = framing["fill"], framing["centre"]
    box = crop_box(view.mask, fill, centre)
    image = torch.from_numpy(crop_resize(view.image, box, SIZE, edge=True)).permute(2, 0, 1).float() / 255
    mask = torch.from_numpy(crop_resize(view.mask, box, SIZE, edge=False)) > 127
    return image, mask


def _small(image: torch.Tensor) -> torch.Tensor:
    return F.interpolate(image[None], size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)[0]


def _iou(first: torch.Tensor, second: torch.Tensor) -> float:
    return float((first & second).sum()) / max(1, int((first | second).sum()))


def _angle_error(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


class Readers:
    """The world segmenter and pose net that score images [B, 3, 64, 64] in [0, 1]."""

    def __init__(self):
        from ganverse3d.dataset.segment import load_segmenter
        from ganverse3d.dataset.views import load_pose_net

        self.segmenter = load_segmenter("world", device="cpu")
        self.pose = load_pose_net("auto", "cpu")

    def masks(self, images: torch.Tensor) -> torch.Tensor:
        from ganverse3d.neural.train import car_masks

        return car_masks(self.segmenter, images)[:, 0] > 0.5

    @torch.no_grad()
    def poses(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, azimuth_logits, elevation = self.pose(images)
        return self.pose.azimuth_deg(azimuth_logits), elevation


def _fid(readers: Readers, first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    from ganverse3d.stylegan2.metrics import FeatureStatistics, extract_features, frechet_distance

    stats = [FeatureStatistics.of(extract_features(readers.pose, torch.stack(images))) for images in (first, second)]
    return frechet_distance(*stats)


def _scores(readers: Readers, renders: list[torch.Tensor], truths: list[Truth], extra_masks=None) -> dict:
    """View control, IoU, |RGB| and fid-world of renders [3, 64, 64] at the truths' cameras."""
    images = torch.stack(renders)
    masks, (azimuths, elevations) = readers.masks(images), readers.poses(images)
    rows = {"azimuth_error": [], "elevation_error": [], "iou_true": [], "rgb": []}
    for index, truth in enumerate(truths):
        rows["azimuth_error"].append(_angle_error(float(azimuths[index]), truth.azimuth))
        rows["elevation_error"].append(abs(float(elevations[index]) - truth.elevation))
        rows["iou_true"].append(_iou(masks[index], truth.mask))
        both = masks[index] & truth.mask
        rows["rgb"].append(float((images[index] - truth.image)[:, both].abs().mean()) * 255 if both.any() else 255.0)
    if extra_masks is not None:
        rows["iou_dibr"] = [_iou(mask, other) for mask, other in zip(masks, extra_masks)]
    result = {name: statistics.mean(values) for name, values in rows.items()}
    result["fid_world"] = _fid(readers, renders, [truth.image for truth in truths])
    return result


def _mean_colour(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return image[:, mask].mean(dim=1) if mask.any() else image.mean(dim=(1, 2))


def disentanglement(readers: Readers, scenes, reconstructions, neural_model) -> dict:
    """Fig. 10 over pairs (car i, car i + 1) in car i's camera (module docstring)."""
    from ganverse3d.api import neural_scene, swap

    rows = {name: [] for name in ("texture_swap_iou", "shape_swap_colour", "background_swap_rgb",
                                  "other_car_iou", "other_car_colour", "other_car_rgb", "shape_swap_iou_to_a",
                                  "shape_swap_iou_to_b", "texture_swap_colour_to_b")}
    for index, a in enumerate(reconstructions):
        b = reconstructions[(index + 1) % len(reconstructions)]
        base = scenes[index].render(a.camera)
        other = scenes[(index + 1) % len(scenes)].render(a.camera)
        swapped = {part: neural_scene(swap(a, b, (part,)), neural_model=neural_model, device="cpu").render(a.camera)
                   for part in ("shape", "texture", "background")}
        masks = readers.masks(torch.stack([base, other, swapped["texture"], swapped["shape"]]))
        base_mask = masks[0]
        rows["texture_swap_iou"].append(_iou(masks[2], base_mask))
        rows["other_car_iou"].append(_iou(masks[1], base_mask))
        base_colour = _mean_colour(base, base_mask)
        shape_colour = _mean_colour(swapped["shape"], masks[3])
        rows["shape_swap_colour"].append(float((shape_colour - base_colour).abs().mean()) * 255)
        rows["other_car_colour"].append(float((_mean_colour(other, masks[1]) - base_colour).abs().mean()) * 255)
        inside = base_mask if base_mask.any() else torch.ones_like(base_mask)
        rows["background_swap_rgb"].append(float((swapped["background"] - base)[:, inside].abs().mean()) * 255)
        rows["other_car_rgb"].append(float((other - base)[:, inside].abs().mean()) * 255)
        # A swap that does nothing keeps everything: these say whether it brought b's part at all.
        rows["shape_swap_iou_to_a"].append(_iou(masks[3], base_mask))
        rows["shape_swap_iou_to_b"].append(_iou(masks[3], masks[1]))
        other_colour = _mean_colour(other, masks[1])
        rows["texture_swap_colour_to_b"].append(
            float((_mean_colour(swapped["texture"], masks[2]) - other_colour).abs().mean()) * 255)
    result = {name: statistics.mean(values) for name, values in rows.items()}
    weights = scenes[0].model.mapping.mixing_weights()
    for index, part in enumerate(("shape", "texture", "background")):
        result[f"dims_{part}"] = float((weights.argmax(dim=0) == index).float().mean())
    return result


class WStarFit:
    """Paper Fig. 8's baseline: the original StyleGAN's W* fitted to the photo, then given another view code."""

    def __init__(self, steps: int):
        from ganverse3d.assets import resolve
        from ganverse3d.bundle import load_module
        from ganverse3d.dataset.views import load_candidates, read_annotation
        from ganverse3d.stylegan2.networks import Generator

        self.G = load_module(resolve("generator", "world64"), Generator).requires_grad_(False)
        annotation = read_annotation(VIEW_ANNOTATION, None)
        candidates = load_candidates(annotation.candidates)
        self.view_layers = candidates.view_layers
        self.view_ws = candidates.ws[[view.view_id for view in annotation.views]]
        self.view_azimuths = [view.azimuth for view in annotation.views]
        self.steps = steps

    def fit(self, image: torch.Tensor) -> torch.Tensor:
        """W* [1, num_ws, w_dim] whose image is closest (L2) to ``image`` [3, 64, 64] in [0, 1]."""
        ws = self.G.mapping.w_avg.detach().clone()[None, None].repeat(1, self.G.num_ws, 1).requires_grad_(True)
        optimizer = torch.optim.Adam([ws], lr=0.02)
        for _ in range(self.steps):
            loss = ((self.G.synthesis(ws) + 1) / 2 - image[None]).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return ws.detach()

    @torch.no_grad()
    def render(self, ws: torch.Tensor, azimuth: float | None = None) -> torch.Tensor:
        """The fitted code's image, with the view entries of the annotated view nearest ``azimuth`` if given."""
        if azimuth is not None:
            nearest = min(range(len(self.view_azimuths)), key=lambda i: _angle_error(self.view_azimuths[i], azimuth))
            ws = ws.clone()
            ws[:, :self.view_layers] = self.view_ws[nearest, :self.view_layers]
        return ((self.G.synthesis(ws) + 1) / 2).clamp(0, 1)[0]


def _dibr(reconstruction, camera) -> tuple[torch.Tensor, torch.Tensor]:
    from ganverse3d.render import render_mesh

    mesh = reconstruction.mesh
    out = render_mesh(mesh.verts[None], mesh.faces, mesh.face_uvs, mesh.texture[None], camera, SIZE, soft=False)
    return out.image[0].clamp(0, 1), out.mask[0, 0] > 0.5


def _camera(azimuth: float, elevation: float, reconstruction):
    from ganverse3d.geometry import Camera

    camera = reconstruction.camera
    return Camera.create(azimuth, elevation, float(camera.distance[0]), float(camera.fov_y[0]))


def _upscaled(image: torch.Tensor, size: int = 128) -> torch.Tensor:
    return F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cars", type=int, default=8)
    parser.add_argument("--models", default="default", help="Comma-separated StyleGAN-R bundles or shipped names.")
    parser.add_argument("--labels", default=None, help="Comma-separated row labels for --models.")
    parser.add_argument("--fit-steps", type=int, default=200, help="Adam steps of the W* fit baseline (0 = skip it).")
    parser.add_argument("--figures", default=None, help="Folder for neural_dual.png, neural_swaps.png, "
                                                        "neural_fit_baseline.png.")
    args = parser.parse_args()
    from ganverse3d.api import load_inverse_model, neural_scene, neural_teacher, reconstruct
    from ganverse3d.files import image_grid, save_png

    torch.set_num_threads(1)
    models = args.models.split(",")
    labels = args.labels.split(",") if args.labels else models
    readers = Readers()
    views = make_set("world", args.cars, VIEWS)
    cars = [views[index:index + VIEWS] for index in range(0, len(views), VIEWS)]
    results, figures = {}, {}
    for label, model in zip(labels, models):
        teacher = neural_teacher(model)
        _, framing = load_inverse_model(teacher, "cpu")
        reconstructions = [reconstruct(car[0].image, mask=car[0].mask, model=teacher, device="cpu", quality="fast")
                           for car in cars]
        scenes = [neural_scene(r, neural_model=model, device="cpu") for r in reconstructions]
        truths, renders, dibr_images, dibr_masks, inputs, input_masks, flat = [], [], [], [], [], [], []
        for car, r, scene in zip(cars, reconstructions, scenes):
            input_image, input_mask = _small(r.image), _small(r.mask)[0] > 0.5
            for view in car[1:]:
                image, mask = _framed(view, framing)
                truth = Truth(float(view.camera["azimuth"]), float(view.camera["elevation"]), image, mask)
                camera = _camera(truth.azimuth, truth.elevation, r)
                truths.append(truth)
                renders.append(scene.render(camera))
                dibr_image, dibr_mask = _dibr(r, camera)
                dibr_images.append(dibr_image)
                dibr_masks.append(dibr_mask)
                inputs.append(input_image)
                input_masks.append(input_mask)
                flat.append(_mean_colour(input_image, input_mask)[:, None, None].expand(3, SIZE, SIZE))
        rows = {label: _scores(readers, renders, truths, dibr_masks) | disentanglement(readers, scenes, reconstructions,
                                                                                        model)}
        if not results:
            true_images = torch.stack([truth.image for truth in truths])
            azimuths, elevations = readers.poses(true_images)
            reader = {
                "azimuth_error": statistics.mean(_angle_error(float(a), t.azimuth) for a, t in zip(azimuths, truths)),
                "elevation_error": statistics.mean(abs(float(e) - t.elevation) for e, t in zip(elevations, truths))}
            rows["truth (the pose net's own error)"] = reader
            rows["input (baseline)"] = _scores(readers, inputs, truths)
            rows["flat colour (baseline)"] = {"rgb": statistics.mean(
                float((colour - truth.image)[:, truth.mask].abs().mean()) * 255 for colour, truth in zip(flat, truths))}
            rows["DIB-R"] = _scores(readers, dibr_images, truths)
            if args.fit_steps:
                fitter = WStarFit(args.fit_steps)
                fitted = [fitter.fit(_small(r.image)) for r in reconstructions]
                fit_renders = [fitter.render(fitted[index // (VIEWS - 1)], truth.azimuth)
                               for index, truth in enumerate(truths)]
                rows[f"W* fit {args.fit_steps} + view code (Fig. 8 baseline)"] = _scores(readers, fit_renders, truths)
                figures["fit"] = (fitter, fitted)
            figures.update(model=model, cars=cars, reconstructions=reconstructions, scenes=scenes, truths=truths,
                           renders=renders, dibr=dibr_images)
        results.update(rows)
        for name, row in rows.items():
            print(f"{name:48s} " + "  ".join(f"{key} {value:.3f}" for key, value in row.items()))
    write_results("bm_neural_quality", {"machine": machine(), "cars": args.cars, "new_cameras": VIEWS - 1,
                                         "models": dict(zip(labels, models)), "rows": results})
    if args.figures:
        write_figures(Path(args.figures), figures, image_grid, save_png)


@torch.no_grad()
def write_figures(folder: Path, figures: dict, image_grid, save_png) -> None:
    from ganverse3d.api import neural_scene, swap

    reconstructions, scenes, truths = figures["reconstructions"], figures["scenes"], figures["truths"]
    new = VIEWS - 1
    rows = []
    for index, (r, scene) in enumerate(zip(reconstructions, scenes)):
        dual = [_small(r.image), _dibr(r, r.camera)[0], scene.render(r.camera)]
        rows.append(dual + figures["renders"][index * new:(index + 1) * new]
                    + [truth.image for truth in truths[index * new:(index + 1) * new]])
    save_png(folder / "neural_dual.png",
             image_grid(torch.stack([_upscaled(t) for row in rows for t in row]), columns=len(rows[0])))
    reference = reconstructions[0]
    rows = []
    for r in reconstructions:
        model = figures["model"]
        rows.append([neural_scene(r, neural_model=model, device="cpu").render(r.camera)]
                    + [neural_scene(swap(r, reference, (part,)), neural_model=model, device="cpu").render(r.camera)
                       for part in ("shape", "texture", "background")])
    save_png(folder / "neural_swaps.png",
             image_grid(torch.stack([_upscaled(t) for row in rows for t in row]), columns=4))
    if "fit" in figures:
        fitter, fitted = figures["fit"]
        rows = []
        for index, r in enumerate(reconstructions):
            chosen = truths[index * new:(index + 1) * new][:3]
            rows.append([_small(r.image), fitter.render(fitted[index])]
                        + [fitter.render(fitted[index], truth.azimuth) for truth in chosen]
                        + figures["renders"][index * new:index * new + 3])
        save_png(folder / "neural_fit_baseline.png",
                 image_grid(torch.stack([_upscaled(t) for row in rows for t in row]), columns=len(rows[0])))


if __name__ == "__main__":
    main()
