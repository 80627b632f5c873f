"""ResNet and SDNet models, and :func:`convert` for turning any model's convs into CSC layers.

SDNet-18/34 are ResNet-18/34 whose stem conv is a CSC layer followed by BatchNorm, without the
ReLU (the non-negative shrinkage is the non-linearity). SDNet-18/34-All replace every 3x3 conv of
the residual blocks as well; 1x1 shortcut projections and the classifier stay ordinary. Their
blocks have no ReLU between the two CSC layers, as in the authors' code
(``bn2(csc2(bn1(csc1(x))))``, the ReLU only after the sum with the shortcut): the non-negative
shrinkage is already the non-linearity, and an extra ReLU there makes the network learn much
more slowly (see :class:`BasicBlock`). With
``shortcut=False`` the -All blocks have neither residual connection nor ReLU: the CSC shrinkage is
then the network's only non-linearity (and every hidden feature can be reconstructed back to the
image through the dictionaries).

Models take images in [0, 1]; the normalisation is the model's first layer, so attacks and noise
are applied in pixel space.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from sdnet.config import ARCHS  # the named architectures: which convs are CSC layers
from sdnet.csc import CSCConv2d

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STEMS = ("cifar", "imagenet")


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; buffers, so the model stays a plain [0,1]-image classifier."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


ConvFactory = Callable[[int, int, int, int, int], nn.Module]  # (in, out, kernel, stride, padding)


def plain_conv(c_in: int, c_out: int, k: int, stride: int, padding: int) -> nn.Module:
    return nn.Conv2d(c_in, c_out, k, stride, padding, bias=False)


def csc_conv(**options) -> ConvFactory:
    def make(c_in: int, c_out: int, k: int, stride: int, padding: int) -> nn.Module:
        return CSCConv2d(c_in, c_out, k, stride, padding, **options)

    return make


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; ``shortcut=False`` drops the residual path and the ReLUs.

    ``inner_relu``: the ReLU between ``bn1`` and ``conv2`` of a ResNet block. The -All networks
    leave it out, as the authors' -All block does (``relu(bn2(csc2(bn1(csc1(x)))) + shortcut(x))``:
    the non-negative shrinkage of ``csc1`` is the block's inner non-linearity). A ReLU there
    slows learning a lot: at width 16 on 10,000 CIFAR-10 images (lr 0.05, batch 128, two seeds)
    the training loss after 100 steps is 2.02 with it, 1.68 without it, 1.64 for SDNet-18.
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int, conv: ConvFactory, shortcut: bool = True, inner_relu: bool = True
    ) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = conv(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out)
        self.shortcut = shortcut
        self.relu = nn.ReLU(inplace=True) if shortcut else nn.Identity()
        self.inner_relu = inner_relu
        self.downsample = None
        if shortcut and (stride != 1 or c_in != c_out):
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x))
        if self.inner_relu:
            out = self.relu(out)
        out = self.bn2(self.conv2(out))
        if not self.shortcut:
            return out
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with BasicBlocks; the stem and the block convs can be CSC layers.

    ``stem="cifar"``: 3x3 stride-1 conv, no max-pool (32x32 inputs). ``stem="imagenet"``: 7x7
    stride-2 conv and a 3x3 stride-2 max-pool (224x224 inputs). ``inner_relu``: the ReLU inside
    each block (see :class:`BasicBlock`; False for the -All networks).
    """

    def __init__(
        self,
        blocks: tuple[int, ...],
        num_classes: int,
        *,
        stem: str = "cifar",
        stem_conv: ConvFactory = plain_conv,
        block_conv: ConvFactory = plain_conv,
        stem_relu: bool = True,
        shortcut: bool = True,
        inner_relu: bool = True,
        width: int = 64,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        self.normalize = Normalize(mean, std)
        k, s, p = (3, 1, 1) if stem == "cifar" else (7, 2, 3)
        self.conv1, self.bn1 = stem_conv(3, width, k, s, p), nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True) if stem_relu else nn.Identity()
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        widths, layers, c_in = (width, 2 * width, 4 * width, 8 * width), [], width
        for i, (stage_width, n) in enumerate(zip(widths, blocks)):
            stage = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(BasicBlock(c_in, stage_width, stride, block_conv, shortcut, inner_relu))
                c_in = stage_width
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * width, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, CSCConv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def zero_init_residual(model: nn.Module) -> None:
    """Set the last BatchNorm scale of every block with a shortcut to zero, so that each such block
    starts as the identity (Goyal et al. 2017, "Accurate, large minibatch SGD"): the early steps of
    a short, high-learning-rate schedule then train a shallow network that deepens as it learns.
    Blocks without a shortcut are left alone (zero there would cut the signal)."""
    for block in model.modules():
        if isinstance(block, BasicBlock) and block.shortcut:
            nn.init.zeros_(block.bn2.weight)


def build(
    name: str,
    num_classes: int = 10,
    stem: str = "cifar",
    *,
    lam: float = 0.1,
    n_steps: int = 2,
    mu: float = 0.0,
    non_negative: bool = True,
    shortcut: bool = True,
    width: int = 64,
    mean=None,
    std=None,
) -> ResNet:
    """Build one of ``resnet18, resnet34, sdnet18, sdnet34, sdnet18_all, sdnet34_all``.

    ``lam, n_steps, mu, non_negative`` configure every CSC layer; ``shortcut`` (-All only) keeps or
    drops the residual connections; ``width`` is the stem's channel count (64 in the paper; the
    stages have 1, 2, 4, 8 times it; smaller widths make CPU-sized versions of the same networks);
    ``mean``/``std`` default to the stem's dataset statistics.
    """
    if name not in ARCHS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(ARCHS)}")
    arch = ARCHS[name]
    if not shortcut and not arch.csc_blocks:
        raise ValueError(f"shortcut=False is only defined for the -All models, not {name!r}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    csc = csc_conv(lam=lam, n_steps=n_steps, mu=mu, non_negative=non_negative)
    default_mean, default_std = (CIFAR_MEAN, CIFAR_STD) if stem == "cifar" else (IMAGENET_MEAN, IMAGENET_STD)
    return ResNet(
        arch.blocks,
        num_classes,
        stem=stem,
        stem_conv=csc if arch.csc_stem else plain_conv,
        block_conv=csc if arch.csc_blocks else plain_conv,
        stem_relu=not arch.csc_stem,
        shortcut=shortcut,
        inner_relu=not arch.csc_blocks,
        width=width,
        mean=default_mean if mean is None else mean,
        std=default_std if std is None else std,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def convert(
    model: nn.Module,
    which: str | Callable[[str, nn.Conv2d], bool] = "stem",
    **csc_options,
) -> nn.Module:
    """Replace ``nn.Conv2d`` layers of ``model`` (in place) by CSC layers of the same shapes.

    ``which="stem"``: the first conv of the model; ``"all"``: every conv with a kernel larger than
    1x1 (1x1 projections stay ordinary, as in SDNet-All); or a predicate ``(name, conv) -> bool``.
    The conv weights become the initial dictionaries; ``csc_options`` (``lam``, ``n_steps``, ...)
    go to every new layer. Activations are left as they are (SDNet drops the ReLU after its stem;
    a converted torchvision ResNet keeps it). Returns ``model``.
    """
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if which == "stem":
        chosen = convs[:1]
    elif which == "all":
        chosen = [(n, m) for n, m in convs if m.kernel_size != (1, 1)]
    elif callable(which):
        chosen = [(n, m) for n, m in convs if which(n, m)]
    else:
        raise ValueError(f"which must be 'stem', 'all' or a predicate, got {which!r}")
    if not chosen:
        raise ValueError("convert: the model has no (chosen) nn.Conv2d layer")
    for name, conv in chosen:
        problems = [
            what
            for what, bad in [
                ("a bias", conv.bias is not None),
                (f"groups={conv.groups}", conv.groups != 1),
                (f"dilation={conv.dilation}", conv.dilation != (1, 1)),
                (f"padding={conv.padding!r}", isinstance(conv.padding, str)),
                (f"padding_mode={conv.padding_mode!r}", conv.padding_mode != "zeros"),
            ]
            if bad
        ]
        if problems:
            raise ValueError(f"cannot convert conv {name!r} to a CSC layer: it has {', '.join(problems)}")
        csc = CSCConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, **csc_options)
        with torch.no_grad():
            csc.weight.copy_(conv.weight)
        csc.to(device=conv.weight.device, dtype=conv.weight.dtype)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, csc)
    return model
