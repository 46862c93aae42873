"""PyTorch networks: nn.Modules only, no data or training code."""
