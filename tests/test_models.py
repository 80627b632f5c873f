"""Model builders and the converter: structure, parameter counts, forward passes."""

import pytest
import torch
from torch import nn

import sdnet
from sdnet import CSCConv2d
from sdnet.models import ARCHS, build, convert, count_parameters

# Parameter counts of the standard networks (CIFAR stem, 10 classes / ImageNet stem, 1000 classes).
CIFAR_COUNTS = {"18": 11_173_962, "34": 21_282_122}
IMAGENET_COUNTS = {"18": 11_689_512, "34": 21_797_672}


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_parameter_counts_equal_the_matching_resnet(name):
    depth = name[-2:] if name[-2:] in ("18", "34") else name.split("_")[0][-2:]
    assert count_parameters(build(name, 10)) == CIFAR_COUNTS[depth]
    assert count_parameters(build(name, 1000, stem="imagenet")) == IMAGENET_COUNTS[depth]


@pytest.mark.parametrize("name,n_csc", [("resnet18", 0), ("sdnet18", 1), ("sdnet18_all", 17), ("sdnet34_all", 33)])
def test_which_convs_are_csc(name, n_csc):
    model = build(name, 10)
    assert len(sdnet.csc_layers(model)) == n_csc
    if n_csc:
        assert isinstance(model.conv1, CSCConv2d) and isinstance(model.relu, nn.Identity)
        assert model.conv1.lam == 0.1 and model.conv1.n_steps == 2 and model.conv1.non_negative
    # 1x1 shortcut projections always stay ordinary convolutions
    assert all(isinstance(m.downsample[0], nn.Conv2d) for m in model.modules() if getattr(m, "downsample", None))


@pytest.mark.parametrize("name,stem,size", [("sdnet18", "cifar", 32), ("sdnet18_all", "cifar", 32), ("resnet18", "imagenet", 64), ("sdnet18", "imagenet", 64)])
def test_forward_and_backward(name, stem, size):
    torch.manual_seed(0)
    model = build(name, 7, stem=stem)
    x = torch.rand(2, 3, size, size)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.sum().backward()
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0


def test_no_shortcut_variant_is_a_pure_csc_chain():
    model = build("sdnet18_all", 10, shortcut=False)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert all(m.downsample is None for m in model.modules() if hasattr(m, "downsample"))
    assert count_parameters(model) < CIFAR_COUNTS["18"]
    model(torch.rand(2, 3, 32, 32)).sum().backward()
    with pytest.raises(ValueError, match="only defined for the -All"):
        build("sdnet18", 10, shortcut=False)


def test_options_reach_every_csc_layer():
    model = build("sdnet18_all", 10, lam=0.3, n_steps=3, non_negative=False)
    assert {(m.lam, m.n_steps, m.non_negative) for _, m in sdnet.csc_layers(model)} == {(0.3, 3, False)}


def test_normalisation_is_inside_the_model():
    model = build("resnet18", 10)
    x = torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
    torch.testing.assert_close(model.normalize(x), (x - mean) / std)
    assert "normalize.mean" not in model.state_dict()


@pytest.mark.parametrize("bad", [dict(name="resnet50"), dict(name="sdnet18", stem="tiny"), dict(name="sdnet18", lam=-1.0), dict(name="sdnet18", n_steps=0)])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        build(**{"num_classes": 10, **bad})


def test_convert_torchvision_resnet():
    from sdnet._torchvision import import_torchvision

    tv = import_torchvision()
    model = tv.models.resnet18(num_classes=10)
    count = count_parameters(model)
    stem_weight = model.conv1.weight.detach().clone()
    convert(model, "stem", lam=0.2)
    assert isinstance(model.conv1, CSCConv2d) and model.conv1.lam == 0.2
    torch.testing.assert_close(model.conv1.weight.detach(), stem_weight)
    assert count_parameters(model) == count
    convert(model, "all")
    assert len(sdnet.csc_layers(model)) == 17  # stem + 16 block convs; 1x1 projections stay
    assert isinstance(model.layer2[0].downsample[0], nn.Conv2d)
    assert count_parameters(model) == count
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 10)


def test_convert_predicate_and_refusals():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3, bias=False), nn.Conv2d(4, 4, 3, groups=2, bias=False))
    convert(model, lambda name, conv: name == "1")
    assert isinstance(model[1], CSCConv2d) and isinstance(model[0], nn.Conv2d)
    with pytest.raises(ValueError, match="'0'.*bias"):
        convert(model, "stem")
    with pytest.raises(ValueError, match="groups=2"):
        convert(model, lambda name, conv: name == "2")
