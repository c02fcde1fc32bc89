"""`convscope explain scoremap`: slide a trained classifier over a larger image (FC layers as convs)."""

from __future__ import annotations

import os

from .common import UsageError, add_common, emit_json, parse_hw

HELP = "draw the class-score map of a classifier slid over a larger image (its FC layers as convolutions)"
DESCRIPTION = (
    HELP
    + """.

The model's Linear layers become convolutions (convscope.models.to_fully_convolutional), so on
an image larger than the model's input it returns one class distribution per window of the
input size, a step of the network's total stride apart. The PNG overlays the probability of
one class (default: the class with the highest probability anywhere) on the image."""
)


def add_parser(sub):
    """Register ``scoremap`` on the ``explain`` command's sub-subparsers ``sub``."""
    import argparse

    p = sub.add_parser(
        "scoremap", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("checkpoint", help="a .npz checkpoint (or a run folder holding best.npz)")
    p.add_argument(
        "--image", required=True, help="the image file (PNG, JPEG, ...), larger than the model's input"
    )
    p.add_argument("--size", help="resize the image to HxW first (default: its own size)")
    p.add_argument("--class", dest="class_", metavar="K", help="class to map, as an index or a name")
    p.add_argument("--out", default="explanations", help="folder for the PNG (default: ./explanations)")
    add_common(p)
    p.set_defaults(handler=run)
    return p


def run(args) -> int:
    from ..data import open_image, prepare_image
    from ..explain.overlay import save_heatmap_overlay
    from ..explain.scoremap import map_to_pixels, score_map
    from ..train.inference import Predictor
    from .explain_heatmap import _class_index

    predictor = Predictor(args.checkpoint)
    c, h, w = predictor.input_shape
    img = open_image(args.image)
    size = parse_hw(args.size, "--size") if args.size else (img.size[1], img.size[0])
    if size[0] < h or size[1] < w:
        raise UsageError(
            f"the image is {size[0]}x{size[1]} but the model's input is {h}x{w}: a score map needs a "
            f"larger image (use --size HxW to enlarge it)"
        )
    image = prepare_image(img, c, size)  # (1, C, H', W') in [0, 1]
    x = predictor.normalizer(image) if predictor.normalizer is not None else image
    result = score_map(predictor.model, x, (c, h, w))
    probs = result["probabilities"]  # (classes, H_out, W_out)
    classes = [str(k) for k in predictor.classes]
    k = _class_index(args.class_, classes)
    if k is None:
        k = int(probs.reshape(len(probs), -1).max(axis=1).argmax())
    heat = map_to_pixels(probs[k], result["stride"], result["window"], size)
    out_h, out_w = probs.shape[1:]
    title = (
        f"P({classes[k]}) over {out_h}x{out_w} windows of {h}x{w}, stride "
        f"{result['stride'][0]}x{result['stride'][1]}"
    )
    stem = os.path.splitext(os.path.basename(args.image))[0]
    path = os.path.join(args.out, f"scoremap_{stem}.png")
    display = image[0].transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    save_heatmap_overlay(display[:, :, 0] if c == 1 else display, heat, path, title)
    print(path)
    low, high = probs[k].min(), probs[k].max()
    print(f"class {classes[k]}: probability {low:.3f}..{high:.3f} over {out_h}x{out_w} windows")
    if args.json:
        emit_json(
            {
                "checkpoint": predictor.checkpoint.path,
                "image": str(args.image),
                "png": path,
                "class_index": k,
                "class": classes[k],
                "window": list(result["window"]),
                "stride": list(result["stride"]),
                "map": probs[k].astype(float).round(6).tolist(),
            }
        )
    return 0
