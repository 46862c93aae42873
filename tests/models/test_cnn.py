"""The study's reduced VGG and the speedrun network: shapes, parameter counts, whitening."""

import torch

from nnlab.models.cnn import SpeedrunNet, VGGReduced, patch_whitening


def test_vgg_reduced_is_the_studys_network():
    model = VGGReduced()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256, 512]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1)
               for c in convs)
    widths = [3, 32, 64, 128, 256, 512]
    pairs = zip(widths[:-1], widths[1:], strict=True)
    conv = sum(9 * a * b + b for a, b in pairs)  # weights + biases
    bn = sum(2 * b for b in widths[1:])  # scale + shift
    head = (512 * 128 + 128) + (128 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == conv + bn + head == 1_637_514
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    assert sum(isinstance(m, torch.nn.Dropout) for m in VGGReduced(dropout=0.5).modules()) == 2


def test_speedrun_net_shapes_and_frozen_parts():
    model = SpeedrunNet((16, 32, 32))
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert not model.whiten.weight.requires_grad
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(b.weight.requires_grad for b in bns)


def test_speedrun_convs_start_as_the_identity():
    model = SpeedrunNet((16, 32, 32)).eval()
    conv = model.groups[1].net[0]  # 16 -> 32 channels: the first 16 filters pass x through
    x = torch.randn(2, 16, 8, 8)
    assert torch.allclose(conv(x)[:, :16], x)
    assert not torch.allclose(SpeedrunNet((16, 32, 32), dirac=False).groups[1].net[0](x)[:, :16], x)


def test_whitening_layer_whitens_the_patches_it_was_fitted_on():
    gen = torch.Generator().manual_seed(0)
    # Correlated images: smooth noise, channels mixed.
    x = torch.nn.functional.avg_pool2d(torch.randn(400, 3, 34, 34, generator=gen), 3, 1)
    x = torch.einsum("ij,njhw->nihw", torch.tensor([[1.0, 0.5, 0.2], [0.3, 1.0, 0.1],
                                                    [0.0, 0.4, 1.0]]), x)
    model = SpeedrunNet((8, 8, 8))
    model.init_whitening(x, eps=1e-6)
    with torch.no_grad():
        out = model.whiten(x)  # (N, 24, 31, 31): 12 filters, then the same negated
    half = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    half = half - half.mean(0)
    cov = half.T @ half / len(half)
    torch.testing.assert_close(cov, torch.eye(12, dtype=torch.float64), atol=2e-3, rtol=0)
    torch.testing.assert_close(out[:, 12:], -out[:, :12])
    assert patch_whitening(x).shape == (24, 3, 2, 2)
