"""Explanations of what a CNN computes and why it predicts what it does.

* :mod:`.trace`: every value of a convolution as per-channel inner products plus a bias.
* :mod:`.model_trace`: one value of a trained model's conv layer, with its receptive field.
* :mod:`.figures`: feature-map and filter grids, a receptive-field box.
* :mod:`.gradcam`: Grad-CAM, Grad-CAM++ and saliency maps; :mod:`.overlay` draws them.
"""

from .figures import feature_map_grid, features_for_layers, filter_grid, grid_shape
from .gradcam import explain_heatmap, grad_cam, grad_cam_plus_plus, saliency, strongest_cell
from .model_trace import trace_model_value
from .overlay import save_heatmap_overlay
from .trace import conv_trace, demo_example, format_trace, load_trace_inputs, random_example

__all__ = [
    "conv_trace",
    "format_trace",
    "demo_example",
    "random_example",
    "load_trace_inputs",
    "trace_model_value",
    "feature_map_grid",
    "filter_grid",
    "features_for_layers",
    "grid_shape",
    "grad_cam",
    "grad_cam_plus_plus",
    "saliency",
    "explain_heatmap",
    "strongest_cell",
    "save_heatmap_overlay",
]
