"""/metrics over the real app and models: names, labels, pre-created series, and what traffic records.

Metrics live in the process-wide registry and other tests add to them, so every check is a delta
between two scrapes around the traffic that should cause it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from svc_helpers import MODEL_NAME, copy_model, make_settings

from service import __version__, metrics
from service.app import create_app

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def served_version(client: TestClient, name: str = MODEL_NAME) -> str:
    return str(client.get(f"/v1/models/{name}").json()["version"])


def test_exposition_has_info_and_precreated_model_series() -> None:
    # A fresh app: model_info describes the registry loaded last in this process.
    with TestClient(create_app(make_settings())) as client:
        samples = scrape(client)
        version = served_version(client)
    assert value(samples, "seqserve_build_info", version=__version__) == 1
    assert value(samples, "seqserve_model_info", model=MODEL_NAME, version=version,
                 provider="CPUExecutionProvider") == 1  # fmt: skip
    present = {(name, labels) for name, labels in samples}
    for reason in metrics.REJECT_REASONS:
        key = frozenset({"model": MODEL_NAME, "reason": reason}.items())
        assert ("seqserve_rejected_requests_total", key) in present
    per_model = ("queue_rows", "batch_rows_count", "queue_wait_seconds_count",
                 "inference_duration_seconds_count", "forecast_input_length_count")  # fmt: skip
    for name in per_model:
        assert (f"seqserve_{name}", frozenset({"model": MODEL_NAME}.items())) in present, name
    assert (
        "seqserve_inference_rows_total",
        frozenset({"model": MODEL_NAME, "version": version}.items()),
    ) in present
    assert any(name == "process_cpu_seconds_total" for name, _ in present)
    # Every route's in-flight gauge exists before any request reaches it; no *_created noise.
    for route in ("/v1/forecast", "/v1/sentiment", "/v1/models/{name}", "/readyz", "unmatched"):
        assert ("seqserve_requests_in_progress", frozenset({"route": route}.items())) in present
    assert not any(name.endswith("_created") for name, _ in present)


def test_route_label_is_the_template_never_the_raw_path(client: TestClient) -> None:
    before = scrape(client)
    assert client.get(f"/v1/models/{MODEL_NAME}").status_code == 200
    assert client.get("/v1/models/no-such-model").status_code == 404
    assert client.get("/definitely/not/a/route").status_code == 404
    assert client.get("/v1/forecast").status_code == 405
    after = scrape(client)
    template = "/v1/models/{name}"
    for status, delta in (("200", 1), ("404", 1)):
        got = value(after, "seqserve_requests_total", route=template, status=status)
        assert got - value(before, "seqserve_requests_total", route=template, status=status) == delta
    for route, status in (("unmatched", "404"), ("/v1/forecast", "405")):
        got = value(after, "seqserve_requests_total", route=route, status=status)
        assert got - value(before, "seqserve_requests_total", route=route, status=status) == 1
    routes = {dict(labels).get("route") for _, labels in after} - {None}
    assert not any("m4" in r or "no-such" in r or "definitely" in r for r in routes), routes
    count = "seqserve_request_duration_seconds_count"
    assert value(after, count, route=template) - value(before, count, route=template) == 2


def test_forecast_traffic_records_rows_batches_lengths_and_rejections(
    client: TestClient, m4_series: list[tuple[str, list[float]]]
) -> None:
    before = scrape(client)
    version = served_version(client)
    series = [{"values": values} for _, values in m4_series]  # three full-length series
    assert client.post("/v1/forecast", json={"series": series}).status_code == 200
    short = {"series": [{"values": [1.0] * 10}, {"values": [2.0] * 20}]}
    assert client.post("/v1/forecast", json=short).status_code == 422
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("seqserve_inference_rows_total", model=MODEL_NAME, version=version) == 3
    assert delta("seqserve_batch_rows_sum", model=MODEL_NAME) == 3
    assert delta("seqserve_batch_rows_count", model=MODEL_NAME) >= 1
    assert delta("seqserve_inference_duration_seconds_count", model=MODEL_NAME) >= 1
    assert delta("seqserve_inference_duration_seconds_sum", model=MODEL_NAME) > 0
    assert delta("seqserve_queue_wait_seconds_count", model=MODEL_NAME) >= 1
    # Lengths are recorded as sent, including the two series that were too short.
    assert delta("seqserve_forecast_input_length_count", model=MODEL_NAME) == 5
    assert delta("seqserve_forecast_input_length_bucket", model=MODEL_NAME, le="24.0") == 2
    assert delta("seqserve_rejected_requests_total", model=MODEL_NAME, reason="invalid_input") == 1
    assert delta("seqserve_requests_total", route="/v1/forecast", status="200") == 1
    assert delta("seqserve_requests_total", route="/v1/forecast", status="422") == 1
    assert value(after, "seqserve_queue_rows", model=MODEL_NAME) == 0


def test_body_limit_413_is_counted_under_its_route() -> None:
    with TestClient(create_app(make_settings(max_body_bytes=1000))) as client:
        before = scrape(client)
        body = b'{"series": [{"values": [' + b"1.0," * 500 + b"1.0]}]}"
        response = client.post("/v1/forecast", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 413
        after = scrape(client)
    labels = {"route": "/v1/forecast", "status": "413"}
    assert (
        value(after, "seqserve_requests_total", **labels) - value(before, "seqserve_requests_total", **labels)
        == 1
    )


def test_timeout_counts_a_timeout_rejection() -> None:
    with TestClient(create_app(make_settings(request_timeout_seconds=1e-9))) as client:
        before = scrape(client)
        values = [float(i % 24) for i in range(200)]
        assert client.post("/v1/forecast", json={"series": [{"values": values}]}).status_code == 504
        after = scrape(client)
    labels = {"model": MODEL_NAME, "reason": "timeout"}
    name = "seqserve_rejected_requests_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_failed_model_counts_unavailable_and_has_no_model_info(tmp_path: Path) -> None:
    repo = copy_model(tmp_path, name="broken-metrics")
    (repo / "broken-metrics" / "1" / "model.onnx").write_bytes(b"not onnx")
    with TestClient(create_app(make_settings(repo))) as client:
        before = scrape(client)
        response = client.post(
            "/v1/forecast", json={"model": "broken-metrics", "series": [{"values": [1.0] * 200}]}
        )
        assert response.status_code == 503
        after = scrape(client)
    labels = {"model": "broken-metrics", "reason": "unavailable"}
    name = "seqserve_rejected_requests_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 1
    assert not any(n == "seqserve_model_info" and ("model", "broken-metrics") in k for n, k in after)


def test_publish_models_replaces_the_served_set() -> None:
    def exposed() -> set[tuple[str, ...]]:
        return {tuple(s.labels.values()) for s in next(iter(metrics.MODEL_INFO.collect())).samples}

    previous = [metrics.ServedModel(n, int(v), p) for n, v, p in metrics._published]  # restored below
    try:
        metrics.publish_models([metrics.ServedModel("pub-test", 1, "CPUExecutionProvider")])
        assert ("pub-test", "1", "CPUExecutionProvider") in exposed()
        metrics.publish_models([metrics.ServedModel("pub-test", 2, "CPUExecutionProvider")])
        assert ("pub-test", "2", "CPUExecutionProvider") in exposed()
        assert ("pub-test", "1", "CPUExecutionProvider") not in exposed()
    finally:
        metrics.publish_models(previous)


def test_unknown_rejection_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rejection reason"):
        metrics.reject(MODEL_NAME, "because")
    with pytest.raises(KeyError):
        metrics.ModelMetrics(MODEL_NAME, 1).rejected("because")


def test_sentiment_labels_are_counted(client: TestClient) -> None:
    before = scrape(client)
    response = client.post("/v1/sentiment", json={"texts": ["a wonderful film", "dull and boring", "fine"]})
    assert response.status_code == 200
    labels = [r["label"] for r in response.json()["results"]]
    model = response.json()["model"]["name"]
    after = scrape(client)
    name = "seqserve_sentiment_predictions_total"
    for label in set(labels):
        got = value(after, name, model=model, label=label) - value(before, name, model=model, label=label)
        assert got == labels.count(label)


def test_bound_histogram_fills_the_same_buckets_and_sum_as_prometheus_observe() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    bounds = (0.5, 1.0, 2.0, 5.0)
    theirs = Histogram("theirs_seconds", "reference", buckets=bounds, registry=registry)
    ours = metrics.BoundHistogram(Histogram("ours_seconds", "bound", buckets=bounds, registry=registry))
    # On each bound, between bounds, below the first, beyond the last, negative, infinite, and NaN.
    values = (0.0, 0.5, 0.75, 1.0, 1.0000001, 2.0, 4.99, 5.0, 7.0, 1e300, -3.0, float("inf"), float("nan"))
    for value in values:
        theirs.observe(value)
        ours.observe(value)

    reference, bound = _samples(registry, "theirs_"), _samples(registry, "ours_")
    assert reference[("seconds_bucket", "0.5")] == 3  # -3.0, 0.0 and 0.5: the bound itself counts
    assert reference[("seconds_count", None)] == len(values) - 1  # NaN lands in no bucket
    assert bound.keys() == reference.keys()
    for key, value in reference.items():
        if key[0] == "seconds_sum":
            assert bound[key] != bound[key] and value != value  # NaN in, NaN sum, in both
        else:
            assert bound[key] == value, key


def test_bound_histogram_observing_many_at_once_matches_observing_each() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    bounds = (0.001, 0.01, 0.1)
    one_by_one = metrics.BoundHistogram(Histogram("each_seconds", "each", buckets=bounds, registry=registry))
    together = metrics.BoundHistogram(Histogram("many_seconds", "many", buckets=bounds, registry=registry))
    batches = [[0.0005, 0.0005, 0.003, 0.01, 0.2], [], [0.05], [float("inf"), 0.001], [0.002, float("nan")]]
    for batch in batches:
        for amount in batch:
            one_by_one.observe(amount)
        together.observe_many(batch)

    each, many = _samples(registry, "each_"), _samples(registry, "many_")
    assert each[("seconds_bucket", "0.001")] == 3 and each[("seconds_count", None)] == 9
    assert each.keys() == many.keys()
    for key, value in each.items():
        if key[0] == "seconds_sum":
            assert value != value and many[key] != many[key]  # the NaN makes both sums NaN
        else:
            assert many[key] == value, key


def _samples(registry: CollectorRegistry, prefix: str) -> dict[tuple[str, str | None], float]:
    """A histogram's samples by (suffix, le) from one registry, for the metrics named with ``prefix``."""
    return {
        (s.name[len(prefix) :], s.labels.get("le")): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(prefix)
    }
