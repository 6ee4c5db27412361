"""Which onnxruntime execution providers to ask for, decided once at start-up."""

from __future__ import annotations

import logging
from typing import Literal

import onnxruntime as ort

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

ProviderSetting = Literal["auto", "cpu", "cuda"]


class ProviderUnavailableError(RuntimeError):
    """The configured execution provider is not in this onnxruntime build; the service must not start."""


def choose_providers(setting: ProviderSetting, available: list[str] | None = None) -> list[str]:
    """Return the provider list to pass to every InferenceSession, most preferred first.

    ``available`` defaults to what this onnxruntime build offers; tests pass it explicitly to
    exercise the decision without needing a GPU.
    """
    offered = list(ort.get_available_providers()) if available is None else list(available)
    if setting == "cpu":
        chosen = [CPU]
    elif setting == "cuda":
        if CUDA not in offered:
            raise ProviderUnavailableError(
                f"SEQSERVE_PROVIDERS=cuda but this onnxruntime build offers only {offered}; "
                "install onnxruntime-gpu with a working CUDA runtime, or use 'auto' or 'cpu'"
            )
        # CPU stays as the fallback for operators CUDA does not implement.
        chosen = [CUDA, CPU]
    else:
        chosen = [CUDA, CPU] if CUDA in offered else [CPU]
    logger.info("execution providers: setting=%s available=%s chosen=%s", setting, offered, chosen)
    return chosen
