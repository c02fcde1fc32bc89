"""convscope.nn: Module, Parameter, layers, containers, losses, init and functional."""
from . import functional, init
from .modules import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d,
                      Conv1d, Conv2d, ConvTranspose2d, CrossEntropyLoss, Dropout, Flatten, Identity,
                      IncompatibleKeys, LeakyReLU, Linear, LogSoftmax, MaxPool2d, Module, ModuleList,
                      MSELoss, NLLLoss, ReLU, RemovableHandle, Sequential, Sigmoid, Softmax,
                      StateDictError, Tanh, Upsample)
from .parameter import Parameter

__all__ = ["functional", "init", "Parameter", "Module", "Sequential", "ModuleList", "Identity",
           "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "AdaptiveMaxPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
           "Flatten", "Linear", "BatchNorm1d", "BatchNorm2d", "Dropout", "Upsample",
           "CrossEntropyLoss", "NLLLoss", "MSELoss", "StateDictError", "IncompatibleKeys",
           "RemovableHandle"]
