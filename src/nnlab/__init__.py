"""nnlab: the MLP, CNN and RNN of a classic deep-learning study, from scratch and in PyTorch."""

__version__ = "0.1.0"
