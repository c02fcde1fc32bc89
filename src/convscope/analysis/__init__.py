"""Analysis: the model summary (shapes, parameters, MACs, receptive fields) and the lecture calculator."""

from .summary import Summary, parse_input_size, summary

__all__ = ["summary", "Summary", "parse_input_size"]
