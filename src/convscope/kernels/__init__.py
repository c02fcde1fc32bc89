"""Forward/backward kernels: no Tensor, no autograd, arrays in and arrays out.

Three backends share one signature per kernel (see :mod:`convscope.kernels.dispatch`): the NumPy
kernels in this package's modules, the readable ones in :mod:`convscope.kernels.reference`
and the compiled ones in :mod:`convscope.kernels.native`.
"""
