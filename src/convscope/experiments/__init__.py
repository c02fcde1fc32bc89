"""Experiments that reproduce a paper's figure in miniature (``convscope experiment ...``)."""

from .depth import run_depth_experiment

__all__ = ["run_depth_experiment"]
