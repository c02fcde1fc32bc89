"""`convscope convert IN OUT`: move weights between .npz, .pth/.pt and .safetensors.

The input's format is recognised by content, the output's by suffix. A training run's
checkpoint (best.npz / last.npz, or the run folder) becomes the model's plain state dict.
"""

from __future__ import annotations

import argparse
import os

from .common import add_common, emit_json

HELP = "convert weights between .npz, .pth/.pt and .safetensors (a run's checkpoint -> its state dict)"
DESCRIPTION = """Convert a weights file to another format. IN may be a convscope .npz, a PyTorch
checkpoint (.pth/.pt/.bin/.ckpt, zip or legacy; read without PyTorch through an allowlist), a
.safetensors file, or a training run's checkpoint (best.npz/last.npz or the run folder), which
becomes the model's plain state dict. OUT's suffix picks the format: .npz, .pth, .pt or
.safetensors (flat name -> array only). --key picks one entry of a nested file, e.g.
--key model for {"model": state_dict, "optimizer": ..., "epoch": 3}."""


def add_parser(sub):
    p = sub.add_parser(
        "convert", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("input", metavar="IN", help="weights file or training run checkpoint")
    p.add_argument("output", metavar="OUT", help="destination (.npz, .pth, .pt or .safetensors)")
    p.add_argument("--key", help="convert only this entry of a nested checkpoint (dotted for deeper: a.b)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    add_common(p)
    p.set_defaults(handler=run)
    return p


def read_weights(path: str, key: str | None = None):
    """The object to convert: a run checkpoint's state dict, or the file's content (or one key of it)."""
    from ..checkpoint import load_checkpoint
    from ..formats import load
    from ..formats.tree import wrap_arrays

    if os.path.isdir(path) or _is_run_checkpoint(path):
        obj = wrap_arrays(load_checkpoint(path).model_state)
    else:
        obj = load(path)
    for part in key.split(".") if key else []:
        if not isinstance(obj, dict) or part not in obj:
            keys = ", ".join(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"--key {key}: no entry {part!r} in {path} (it has: {keys})")
        obj = obj[part]
    return obj


def _is_run_checkpoint(path: str) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return "__meta__.npy" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def run(args) -> int:
    from ..formats import save
    from ..formats.tree import as_array

    if os.path.exists(args.output) and not args.force:
        raise ValueError(f"{args.output} exists; pass --force to overwrite it")
    obj = read_weights(args.input, args.key)
    save(obj, args.output)
    flat = isinstance(obj, dict) and all(as_array(v) is not None for v in obj.values())
    arrays = len(obj) if flat else None
    what = f"{arrays} arrays" if arrays is not None else type(obj).__name__
    print(f"wrote {args.output} ({what})")
    if args.json:
        emit_json({"input": args.input, "output": args.output, "arrays": arrays})
    return 0
