"""The one-graph forecaster ensemble: its combiner, member choice, and the committed versions 1 and 2."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from training.ensemble_model import ForecastEnsemble, combine, order_weights
from training.ensemble_pipeline import ensemble_from_manifest
from training.ensemble_select import HoldoutScorer, choose_members
from training.export import ort_session, parity
from training.forecast_pipeline import M4_TRAIN, parity_cases
from training.forecast_train import ForecastConfig, _schedule, point_loss
from training.models import LSTMForecaster
from training.series_io import load_m4_wide

ENSEMBLE = Path(__file__).resolve().parents[2] / "models/m4-hourly-ensemble"
ENSEMBLE_DIR = ENSEMBLE / "1"
V2_DIR = ENSEMBLE / "2"


@pytest.fixture(scope="module", params=[1, 2], ids=["v1", "v2"])
def version_dir(request: pytest.FixtureRequest) -> Path:
    return ENSEMBLE / str(request.param)


@pytest.fixture(scope="module")
def manifest(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / "model.json").read_text())


def _manifest(version_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((version_dir / "model.json").read_text())
    return result


@pytest.fixture(scope="module")
def series() -> list[np.ndarray]:
    return list(load_m4_wide(M4_TRAIN).values())


def test_order_weights_pick_the_middle_and_sum_to_one():
    assert order_weights(5, "median") == [0, 0, 1, 0, 0]
    assert order_weights(4, "median") == [0, 0.5, 0.5, 0]
    assert order_weights(5, "trim1") == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3, 0])
    assert order_weights(3, "mean") == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="more than 4 members"):
        order_weights(4, "trim2")
    with pytest.raises(ValueError, match="unknown combiner"):
        order_weights(3, "max")


@pytest.mark.parametrize("combiner", ["median", "trim1", "mean"])
def test_combining_monotone_members_stays_monotone(combiner: str):
    rng = np.random.default_rng(0)
    # Five members whose quantile vectors are each increasing but cross each other wildly.
    steps = rng.exponential(size=(5, 64, 48, 7))
    members = torch.from_numpy(np.cumsum(steps, axis=-1) + rng.normal(scale=5, size=(5, 64, 48, 1)))
    out = combine(members, torch.tensor(order_weights(5, combiner), dtype=members.dtype))
    assert out.shape == (64, 48, 7)
    assert (out.diff(dim=-1) >= 0).all()
    if combiner == "median":
        np.testing.assert_allclose(out.numpy(), np.median(members.numpy(), axis=0))


def test_each_member_reads_its_own_context_length():
    quantiles = (0.1, 0.5, 0.9)
    members = [LSTMForecaster(6, quantiles, season_length=4, skip_length=8, hidden_size=4) for _ in range(3)]
    ens = ForecastEnsemble(members, [8, 12, 20], "median").eval()
    x = torch.rand(2, 30) + 1
    with torch.no_grad():
        stacked = ens.member_forecasts(x)
        for i, length in enumerate([8, 12, 20]):
            torch.testing.assert_close(stacked[i], members[i](x[:, -length:]))
    assert ens.min_context_length == 8
    with pytest.raises(ValueError, match="positive"):
        ForecastEnsemble(members, [8, 12, 20], "median", interval_scale=0.0)


def test_committed_manifest_records_members_selection_and_test_looks(
    manifest: dict[str, Any], version_dir: Path
):
    assert (manifest["name"], manifest["version"], manifest["task"]) == (
        "m4-hourly-ensemble",
        int(version_dir.name),
        "forecast",
    )
    t, p = manifest["training"], manifest["parameters"]
    lengths = [m["spec"]["context_length"] for m in t["members"]]
    assert (
        p["context_length"] == max(lengths)
        and p["min_context_length"] == t["member_config"]["min_context_length"]
    )
    assert p["horizon"] == 48 and len(p["quantiles"]) == 7 and p["season_length"] == 24
    assert manifest["outputs"][0]["shape"] == [-1, 48, 7]
    assert len(t["members"]) >= 3 and len(set(lengths)) >= 2
    assert t["selection"]["combiner"] in t["selection"]["combiners"]
    assert t["configurations_scored_on_test"] >= 1
    assert manifest["parity"]["max_rel_diff"] < 1e-4


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_committed_ensemble_matches_its_torch_weights(
    batch: int, manifest: dict[str, Any], series: list[np.ndarray], version_dir: Path
):
    ensemble = ensemble_from_manifest(version_dir)
    p = manifest["parameters"]
    shape = ForecastConfig(context_length=p["context_length"], min_context_length=p["min_context_length"])
    cases = [c for c in parity_cases(series, shape) if c[0].startswith(f"batch{batch}_")]
    assert {c[1]["values"].shape[1] for c in cases} == {p["min_context_length"], p["context_length"]}
    assert parity(ensemble, version_dir / "model.onnx", cases)["max_rel_diff"] < 1e-4


def test_committed_ensemble_is_batch_invariant_and_monotone(
    manifest: dict[str, Any], series: list[np.ndarray], version_dir: Path
):
    sess = ort_session(version_dir / "model.onnx")
    for length in (
        manifest["parameters"]["min_context_length"],
        200,
        manifest["parameters"]["context_length"],
    ):
        rows = np.stack([s[-length:] for s in series[:64]]).astype(np.float32)
        batched = sess.run(None, {"values": rows})[0]
        assert batched.shape == (64, 48, 7)
        assert (np.diff(batched, axis=-1) >= 0).all()
        for i in (0, 31, 63):
            alone = sess.run(None, {"values": rows[i : i + 1]})[0]
            np.testing.assert_allclose(alone[0], batched[i], rtol=1e-5, atol=1e-4)


def test_point_loss_terms_and_the_step_schedule():
    median, target = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 4.0]])
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0]])  # seasonal (m=2) differences are all 2
    assert point_loss("smape", median, target, x, 2).item() == pytest.approx((0 + 2 * 2 / 6) / 2)
    assert point_loss("mase", median, target, x, 2).item() == pytest.approx((0 + 2 / 2) / 2)
    with pytest.raises(ValueError, match="unknown point loss"):
        point_loss("mape", median, target, x, 2)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = _schedule(ForecastConfig(lr_schedule="step"), opt, total=100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.2) and lrs[10] == 1.0
    assert lrs[70] == pytest.approx(0.3) and lrs[90] == pytest.approx(0.09)


def test_v1_member_is_v1s_weights_and_the_test_looks_add_up():
    t = _manifest(ENSEMBLE_DIR)["training"]
    reused = [m for m in t["members"] if m.get("weights_from")]
    v1_weights = "models/m4-hourly/1/torch_state.pt"
    assert [m["weights_from"] for m in reused] == [t["member_weights"]] == [v1_weights]
    assert reused[0]["spec"]["hidden_size"] == 64 and reused[0]["trained_in_this_run"] is False
    # The honest training time counts the reused member's own recorded run.
    assert t["train_seconds"] >= reused[0]["train_seconds"] == 1373.0
    assert f"--member-weights {v1_weights}" in t["command"]
    assert t["configurations_scored_on_test"] == len(t["earlier_test_looks"]) + 1
    index = t["members"].index(reused[0])
    v1 = torch.load(ENSEMBLE_DIR.parents[1] / "m4-hourly/1/torch_state.pt", weights_only=True)
    member = ensemble_from_manifest(ENSEMBLE_DIR).members[index].state_dict()
    assert member.keys() == v1.keys()
    for key, value in v1.items():
        torch.testing.assert_close(member[key], value, rtol=0, atol=0)


def test_member_choice_takes_the_subset_and_combiner_with_the_lowest_holdout_owa():
    rng = np.random.default_rng(3)
    fit = [rng.uniform(50, 150, size=200) for _ in range(6)]
    truth = np.stack([s[-24:] for s in fit]) * rng.uniform(0.9, 1.1, size=(6, 24))
    quantiles = [0.1, 0.5, 0.9]
    scorer = HoldoutScorer(fit, truth, quantiles, 24)
    exact = truth[:, :, None] + np.array([-1.0, 0.0, 1.0])
    # Members 0 and 2 are exact, 1 and 3 too high: the median of {0, 1, 2} (or, later in the order,
    # of {0, 2, 3}) is exact; every mean, and every combination of all four, is not.
    stacked = np.stack([exact, exact * 1.5, exact, exact * 1.3])
    keep, combiner, table = choose_members(stacked, scorer, 3)
    assert keep == [0, 1, 2] and combiner == "median"
    assert table[0]["owa"] == 0.0 and table[0]["members"] == keep
    assert all(len(row["members"]) >= 3 for row in table)
    assert len({(tuple(row["members"]), row["combiner"]) for row in table}) == len(table)
    # min_members equal to the count keeps everyone (version 1's rule) and only picks the combiner.
    everyone, _, _ = choose_members(stacked, scorer, 4)
    assert everyone == [0, 1, 2, 3]


def test_v2_reuses_v1s_members_bit_for_bit_and_counts_their_time():
    t1, t2 = _manifest(ENSEMBLE_DIR)["training"], _manifest(V2_DIR)["training"]
    v1_members = ensemble_from_manifest(ENSEMBLE_DIR).members
    v2_members = ensemble_from_manifest(V2_DIR).members
    v1_specs = [m["spec"] for m in t1["members"]]
    considered = t2["members"] + t2["members_trained_not_kept"]
    reused = [m for m in considered if not m["trained_in_this_run"]]
    assert reused and all(m["spec"] in v1_specs for m in reused)
    for index, member in enumerate(t2["members"]):
        if member["trained_in_this_run"]:
            continue
        before = v1_members[v1_specs.index(member["spec"])].state_dict()
        after = v2_members[index].state_dict()
        assert before.keys() == after.keys()
        for key, value in before.items():
            torch.testing.assert_close(after[key], value, rtol=0, atol=0)
    # The honest time: this run's wall time plus every reused member's recorded training time,
    # whether or not the holdout kept it (the budget itself is reported in docs/training.md, not tested).
    assert t2["reused_seconds"] == pytest.approx(sum(m["train_seconds"] for m in reused))
    assert f"--reuse-members {ENSEMBLE_DIR.relative_to(ENSEMBLE.parents[1])}" in t2["command"]
    # Cumulative test looks: version 1's four, then this one.
    assert t2["configurations_scored_on_test"] == t1["configurations_scored_on_test"] + 1
    assert t2["configurations_scored_on_test"] == len(t2["earlier_test_looks"]) + 1
    best = t2["selection"]["best_subsets"][0]
    assert best["owa"] == min(row["owa"] for row in t2["selection"]["best_subsets"])
    assert best["members"] == t2["selection"]["members_kept"] and len(best["members"]) == len(t2["members"])
    assert best["combiner"] == t2["selection"]["combiner"]
