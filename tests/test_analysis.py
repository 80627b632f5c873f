"""Tracing codes through the network: reconstruction through the dictionaries, BatchNorm
inversion, code sparsity (sdnet.analysis)."""

import pytest
import torch
from torch import nn

import sdnet
from sdnet import analysis
from sdnet.models import build


@pytest.fixture(scope="module")
def chain() -> nn.Module:
    """A narrow SDNet-18-All without shortcuts, with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    model = build("sdnet18_all", 10, width=8, shortcut=False).double()
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
        bn.running_mean.uniform_(-0.1, 0.1)
        bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_first_layer_reconstruction_is_the_stems_own(chain):
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    recons = analysis.reconstruct_through_dictionaries(chain, x)
    assert len(recons) == len(sdnet.csc_layers(chain)) == 17
    assert all(r.shape == x.shape for r in recons)
    # the forward pass inside was the stem's last one: its own reconstruction, in pixel units
    stem = chain.conv1.reconstruction() * chain.normalize.std + chain.normalize.mean
    torch.testing.assert_close(recons[0], stem)
    # layer 1: its own reconstruction, through the stem's BatchNorm and dictionary, to pixels
    first = chain.layer1[0].conv1
    below = analysis.invert_batchnorm(chain.bn1, first.reconstruction())
    stem_input = nn.functional.conv_transpose2d(below, chain.conv1.weight, padding=1)
    torch.testing.assert_close(recons[1], stem_input * chain.normalize.std + chain.normalize.mean)
    assert len(analysis.reconstruct_through_dictionaries(chain, x, upto=2)) == 3


def test_strided_layers_get_back_to_the_image_size(chain):
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    recons = analysis.reconstruct_through_dictionaries(chain, x)
    strided = [n for n, m in sdnet.csc_layers(chain) if m.stride == (2, 2)]
    assert strided == ["layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1"]
    assert recons[-1].shape == x.shape and torch.isfinite(recons[-1]).all()


def test_invert_batchnorm_undoes_an_eval_batchnorm():
    bn = nn.BatchNorm2d(3).eval()
    bn.weight.data = torch.tensor([0.5, 2.0, -1.0])
    bn.bias.data = torch.tensor([0.1, -0.2, 0.3])
    bn.running_mean = torch.tensor([1.0, 0.0, -1.0])
    bn.running_var = torch.tensor([4.0, 0.25, 1.0])
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(analysis.invert_batchnorm(bn, bn(x)), x)


def test_reconstruction_refuses_what_is_not_a_pure_chain():
    x = torch.rand(1, 3, 32, 32)
    with_shortcuts = build("sdnet18_all", 10, width=8).eval()
    with pytest.raises(ValueError, match="layer1.1.conv1.*shortcut=False"):
        analysis.reconstruct_through_dictionaries(with_shortcuts, x)
    # the stem and the first block's two layers do read the previous code through a BatchNorm alone
    # (an -All block has no ReLU inside); the second block reads a residual sum
    assert len(analysis.reconstruct_through_dictionaries(with_shortcuts, x, upto=2)) == 3
    imagenet_stem = build("sdnet18_all", 10, stem="imagenet", width=8, shortcut=False).eval()
    with pytest.raises(ValueError, match="pooling"):  # the stem's max-pool cannot be undone
        analysis.reconstruct_through_dictionaries(imagenet_stem, torch.rand(1, 3, 64, 64))
    assert len(analysis.reconstruct_through_dictionaries(build("sdnet18", 10, width=8).eval(), x)) == 1
    with pytest.raises(ValueError, match="no CSC layer"):
        analysis.reconstruct_through_dictionaries(build("resnet18", 10, width=8).eval(), x)


def test_code_sparsity_per_layer(chain):
    chain.train()
    sparsity = analysis.code_sparsity_per_layer(chain, torch.rand(2, 3, 32, 32, dtype=torch.float64))
    assert chain.training  # the mode is restored
    chain.eval()
    assert list(sparsity) == [n for n, _ in sdnet.csc_layers(chain)]
    assert all(0.0 <= v <= 1.0 for v in sparsity.values())
