"""The study's MLP written from scratch in NumPy (this package never imports torch)."""

from nnlab.numpy_nn.mlp import MLP
from nnlab.numpy_nn.modules import CrossEntropy, Linear, ReLU, SoftMax
from nnlab.numpy_nn.optim import SGD, Adam, clip_grad_norm
from nnlab.numpy_nn.step import NumpyStep

__all__ = ["MLP", "Linear", "ReLU", "SoftMax", "CrossEntropy", "SGD", "Adam",
           "NumpyStep", "clip_grad_norm"]
