"""The reference backend: convolution, pooling and batch norm written to be read beside the lecture.

Loops over output positions and textbook im2col/col2im, with the same function names,
signatures and results as the NumPy kernels (:mod:`convscope.kernels.conv`, ``pool``,
``batchnorm``), so ``convscope.backends.use("reference")`` runs whole models on them. They are
the oracle the fast kernels are tested against. Start with :mod:`.conv`.

What has no reference version of its own and runs its NumPy kernel under this backend:
elementwise ops (ReLU, the residual add), linear layers and matrix products, batch norm in
evaluation mode (``channel_affine``/``channel_sums``), padding modes and resampling.
"""
