"""Device and precision: where a network runs, whether in bf16, and on how many processes.

One rule for training, evaluation, the noise sweeps and the benchmark (:func:`use_bf16`), kept
apart from the evaluation loop because it decides how a network is trained: the training stage
depends on this module, not on :mod:`sdnet.evaluate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings

import torch
import torch.distributed as dist

from sdnet.config import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; asking for CUDA without one is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available here: use device: cpu (or auto)")
    return device


BF16_SETTINGS = ("auto", True, False)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX-BF16 or AVX512-BF16: Intel Xeons
    since Sapphire Rapids, AMD Zen 4), as PyTorch's own CPU probe reports it. Elsewhere oneDNN
    emulates bf16 and runs it slower than float32."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.8
    if capabilities is None:
        return False
    found = capabilities()
    return bool(found.get("amx_bf16") or found.get("avx512_bf16"))


def use_bf16(device: torch.device, bf16: bool | str = "auto") -> bool:
    """The one precision rule of training, evaluation, the noise sweeps and the benchmark.

    ``"auto"``: bf16 autocast on CUDA and on a CPU with native bf16 matrix units
    (:func:`cpu_has_native_bf16`), float32 elsewhere. ``True``/``False`` force it; ``True`` on a CPU
    without those units works but is slow, and says so. The CSC layers keep their solver's sums in
    float32 either way (:func:`sdnet.csc.fista`).
    """
    if bf16 not in BF16_SETTINGS:
        raise ConfigError(f"bf16 must be one of {list(BF16_SETTINGS)}, got {bf16!r}")
    device = torch.device(device)
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    if bf16 == "auto":
        return native
    if bf16 and not native:
        warnings.warn(
            f"bf16 was asked for on {device.type}, which has no native bf16 matrix units: it is emulated "
            "and runs slower than float32 (use bf16: auto or false)", stacklevel=2,
        )
    return bool(bf16)


def autocast_for(device: torch.device, bf16: bool | str = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast where :func:`use_bf16` says so, else nothing (float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16(device, bf16) else contextlib.nullcontext()


def device_kind(device: torch.device) -> str:
    """What a run ran on, in the words a results table needs: the GPU's name, or the CPU's name and
    its widest matrix instructions (``AMX-BF16``, ``AVX512-BF16``: bf16 native; ``AVX-512``,
    ``AVX2``: bf16 emulated). A run resumed on another machine records each kind it ran on."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    capabilities = getattr(torch.cpu, "get_capabilities", dict)()
    isa = next((label for key, label in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("avx512_f", "AVX-512"),
                                         ("avx2", "AVX2")) if capabilities.get(key)), "no AVX2")
    return f"{capabilities.get('cpu_name') or 'CPU'} ({isa})"


def precision_name(bf16: bool) -> str:
    """``bf16`` or ``float32``: the words history.csv and the tables use."""
    return "bf16" if bf16 else "float32"


# ---------------------------------------------------------------------------------------------
# Distributed set-up (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Dist:
    """This process's place among the processes of a distributed run (one process: the defaults)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group torchrun started (if any); returns this process's place and device."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        return Dist(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world_size, local_rank), device
