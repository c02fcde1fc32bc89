"""Differentiable ops: one autograd Function (tape node) per primitive."""
