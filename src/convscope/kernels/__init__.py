"""Pure NumPy forward/backward kernels. No Tensor, no autograd: arrays in, arrays out."""
