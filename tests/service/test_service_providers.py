import onnxruntime as ort
import pytest

from service.runtime.providers import CPU, CUDA, ProviderUnavailableError, choose_providers

HAS_CUDA = CUDA in ort.get_available_providers()


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime build has CUDA; auto would rightly pick it")
def test_auto_picks_cpu_without_cuda() -> None:
    assert choose_providers("auto") == [CPU]


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime build has CUDA, so 'cuda' is satisfiable")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ProviderUnavailableError, match="SEQSERVE_PROVIDERS=cuda"):
        choose_providers("cuda")


def test_auto_prefers_cuda_when_offered() -> None:
    assert choose_providers("auto", available=[CUDA, CPU]) == [CUDA, CPU]


def test_cpu_is_cpu_even_when_cuda_is_offered() -> None:
    assert choose_providers("cpu", available=[CUDA, CPU]) == [CPU]


def test_cuda_keeps_cpu_fallback() -> None:
    assert choose_providers("cuda", available=[CUDA, CPU]) == [CUDA, CPU]


def test_choice_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="service.runtime.providers"):
        choose_providers("cpu", available=[CPU])
    assert "chosen=['CPUExecutionProvider']" in caplog.text
