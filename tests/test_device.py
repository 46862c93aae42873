"""--device and --precision resolution."""

import pytest
import torch

from nnlab import device as dev
from nnlab.errors import ConfigError


def test_auto_device_prefers_cuda_then_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert dev.resolve_device("auto").type == "cpu"


def test_absent_device_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no cuda device"):
        dev.resolve_device("cuda")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_where_the_cpu_has_it(monkeypatch, native, expected):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: native)
    assert dev.resolve_precision("auto", torch.device("cpu")) == expected
    assert dev.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert dev.resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_bf16_autocast_runs_a_linear_in_bf16():
    layer = torch.nn.Linear(4, 3)
    with dev.autocast(torch.device("cpu"), "bf16"):
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with dev.autocast(torch.device("cpu"), "fp32"):
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    with pytest.raises(ConfigError):
        dev.resolve_precision("fp16", torch.device("cpu"))
