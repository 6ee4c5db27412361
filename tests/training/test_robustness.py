"""The out-of-domain check (``python -m training robustness``) on a slice of its committed data."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tokenizers import Tokenizer

from training import robustness
from training import robustness_forecast as rf
from training import robustness_sentiment as rs
from training.forecast_eval import onnx_forecast
from training.sentiment_pipeline import SST_DIR, onnx_probabilities
from training.sentiment_train import read_tsv
from training.series_io import load_long_csv

REPO = Path(__file__).resolve().parents[2]
MAX_WINDOWS = 2
MAX_SENTENCES = 60


@pytest.fixture(scope="module")
def small_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("robustness")
    report = robustness.run(out_dir=out, threads=1, max_windows=MAX_WINDOWS, max_sentences=MAX_SENTENCES)
    return report, out


def test_ood_series_are_regular_positive_and_as_documented() -> None:
    series = load_long_csv(rf.OOD_HOURLY)
    assert {k: v.size for k, v in series.items()} == {
        "sf-temps": 8760,
        "seattle-temps": 8760,
        "taylor-demand": 2016,
    }
    for values in series.values():
        assert np.isfinite(values).all() and values.min() > 0  # sMAPE and the models' log scaling need > 0


def test_windows_are_the_series_cut_at_their_origins() -> None:
    series = load_long_csv(rf.OOD_HOURLY)
    w = rf.cut_windows(rf.OOD_HOURLY, history=336, max_per_series=3)
    assert w.history.shape == (9, 336) and w.actual.shape == (9, rf.HORIZON)
    for i, (sid, t) in enumerate(zip(w.series_ids, w.origins, strict=True)):
        np.testing.assert_array_equal(w.history[i], series[sid][t - 336 : t])
        np.testing.assert_array_equal(w.actual[i], series[sid][t : t + rf.HORIZON])
    assert w.origins[:3] == [336, 336 + rf.STEP, 336 + 2 * rf.STEP]


def test_versions_resolve_like_the_service() -> None:
    # m4-hourly v2 (int8) opts out of being the default, so unpinned requests get v1.
    assert rf.resolve_version(REPO / "models/m4-hourly", "default").name == "1"
    assert rf.resolve_version(REPO / "models/m4-hourly", "latest").name == "2"
    assert rf.resolve_version(REPO / "models/sst2-bilstm", "1").name == "1"


def test_every_version_opting_out_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1/model.json").write_text(json.dumps({"default": False}))
    with pytest.raises(ValueError, match="opts out"):
        rf.resolve_version(tmp_path, "default")


def test_single_thread_inference_matches_the_evaluation_code() -> None:
    w = rf.cut_windows(rf.OOD_HOURLY, history=336, max_per_series=1)
    onnx = REPO / "models/m4-hourly-ensemble/2/model.onnx"
    ours = rf.onnx_quantiles(onnx, w.history, threads=1)
    reference = onnx_forecast(onnx, list(w.history))
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-3)

    version = REPO / "models/sst2-distilled/1"
    texts, _ = read_tsv(rs.OOD_SENTIMENT / "amazon_reviews.tsv")
    params = json.loads((version / "model.json").read_text())["parameters"]
    tok = Tokenizer.from_file(str(version / params["tokenizer"]))
    probs = onnx_probabilities(version / "model.onnx", tok, texts[:40], params["max_tokens"])
    expected = probs.argmax(axis=1)
    np.testing.assert_array_equal(rs.onnx_labels(version, texts[:40], threads=1), expected)


def test_sentiment_sets_have_both_labels_and_no_sst_sentence() -> None:
    def norm(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())

    sst = set()
    for name in ("glue_train.tsv", "glue_dev.tsv", "test_labeled.tsv"):
        sst.update(norm(t) for t in read_tsv(SST_DIR / name)[0])
    for name in rs.SETS:
        texts, labels = read_tsv(rs.OOD_SENTIMENT / f"{name}.tsv")
        assert set(labels.tolist()) == {0, 1} and len(texts) > 2000
        assert not {norm(t) for t in texts} & sst


def test_sign_test() -> None:
    assert rs.sign_test_p(0, 0) == 1.0
    assert rs.sign_test_p(5, 0) == pytest.approx(2 / 32)
    assert rs.sign_test_p(3, 9) == rs.sign_test_p(9, 3)
    assert rs.sign_test_p(10, 10) == 1.0


def test_forecast_scores_on_a_slice(small_report: tuple[dict[str, Any], Path]) -> None:
    fc = small_report[0]["forecast"]
    assert fc["windows"] == 3 * MAX_WINDOWS and fc["horizon"] == 48 and fc["season"] == 24
    pooled = fc["pooled"]
    assert set(pooled) == {"snaive", "naive2", "m4-hourly v1", "m4-hourly-ensemble v2"}
    # The references score exactly 1 against themselves: OWA is relative to them on the same windows.
    assert pooled["snaive"]["owa_vs_snaive"] == 1.0
    assert pooled["naive2"]["owa_vs_naive2"] == 1.0
    for label in ("m4-hourly v1", "m4-hourly-ensemble v2"):
        s = pooled[label]
        assert all(math.isfinite(v) and v > 0 for v in s.values())
        # OWA is the mean of the two ratios to sNaive's aggregates (rounded to 4 places in the report).
        ref = pooled["snaive"]
        expected = 0.5 * (s["smape"] / ref["smape"] + s["mase"] / ref["mase"])
        assert s["owa_vs_snaive"] == pytest.approx(expected, abs=1e-3)
        assert 0.0 <= fc["coverage_0.1_0.9"][label] <= 1.0
    for scores in fc["by_series"].values():
        assert scores["snaive"]["owa_vs_snaive"] == 1.0
    won = fc["windows_won"]
    assert won["candidate_better"] + won["base_better"] <= won["n"] == fc["windows"]


def test_sentiment_scores_on_a_slice(small_report: tuple[dict[str, Any], Path]) -> None:
    st = small_report[0]["sentiment"]
    assert set(st["models"]) == {"sst2-bilstm v1", "sst2-bilstm v2", "sst2-distilled v1", "sst2-distilled v2"}
    for name in rs.SETS:
        s = st["sets"][name]
        assert s["n"] == MAX_SENTENCES
        for acc in s["accuracy"].values():
            assert 0.0 <= acc <= 100.0
            # Accuracy on n sentences is a multiple of 100/n: catches scoring a different number of rows.
            assert round(acc * MAX_SENTENCES / 100) == pytest.approx(acc * MAX_SENTENCES / 100, abs=0.01)
    for pair in st["paired"]:
        for name in rs.SETS:
            p, acc = pair[name], st["sets"][name]["accuracy"]
            diff = acc[pair["candidate"]] - acc[pair["base"]]
            # The accuracy gap is exactly the discordant sentences' difference.
            discordant = p["candidate_only"] - p["base_only"]
            assert diff == pytest.approx(100 * discordant / MAX_SENTENCES, abs=0.02)


def test_reports_are_written(small_report: tuple[dict[str, Any], Path]) -> None:
    report, out = small_report
    assert json.loads((out / "report.json").read_text())["verdicts"] == report["verdicts"]
    text = (out / "report.md").read_text()
    assert "OWA vs sNaive-24" in text and "amazon_reviews" in text and "## Verdicts" in text
    # One forecast verdict; per set, the newest sentiment model against every other one.
    assert len(report["verdicts"]) == 1 + (len(robustness.CLASSIFIERS) - 1) * len(rs.SETS)
