"""What only a GPU can show: a run on CUDA in bf16, its model loaded back on the CPU.
Marked ``cuda`` (``benchmarks/gpu_check.py`` runs them with ``pytest -m cuda``); skipped on a
machine without CUDA, where the CPU paths are tested everywhere else."""

import json

import pytest
import torch

from nnlab.cli import main

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_bf16_autocast_on_cuda_is_close_to_fp32():
    a, b = (torch.randn(512, 512, device="cuda") for _ in range(2))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        rough = (a @ b).float()
    assert rough.dtype == torch.float32
    assert float((rough - a @ b).norm() / (a @ b).norm()) < 1e-2


def test_the_fast_cnn_trains_on_cuda_in_bf16_and_loads_on_the_cpu(learnable_cifar,
                                                                  nnlab_cache, tmp_path):
    out = tmp_path / "run"
    assert main(["run", "cifar-speedrun", "--quick", "--device", "cuda", "--data",
                 str(learnable_cifar), "--out", str(out)]) == 0
    provenance = json.loads((out / "config.json").read_text())["provenance"]
    assert provenance["device"].startswith("cuda") and provenance["precision"] == "bf16"
    import nnlab

    model = nnlab.load(out)  # trained on the GPU, read back on the CPU
    image = next(p for p in (learnable_cifar / "test").rglob("*") if p.is_file())
    said = model.predict([image])[0]
    assert said.error is None and len(said.classes) == 1 and 0 < said.probabilities[0] <= 1
