"""Datasets, held in memory as arrays or tensors."""
