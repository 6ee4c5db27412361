"""Every Prometheus metric of the service, defined once, plus the helpers that record them.

Naming follows Prometheus conventions: ``seqserve_`` prefix, base units (seconds, rows), ``_total`` on
counters, and only bounded label values (route templates, status codes, loaded model names, a fixed set
of rejection reasons). Series for a loaded model are created at 0 when the model loads, so a dashboard
shows a flat line rather than "no data" and ``rate()`` sees the first increment.

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set before the workers import
``prometheus_client`` (the launcher sets it for ``SEQSERVE_WORKERS > 1``; see
``metrics_exposition.prepare_multiprocess``), every worker writes its samples to mmap files there and
``/metrics`` in any worker aggregates all of them (``service.metrics_exposition``).
Gauges say how to aggregate: ``livesum`` for amounts (in-flight requests, queued rows) and ``livemax``
for info gauges; "live" drops a worker's files when it exits (``mark_worker_exit``).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from service import __version__
from service.exceptions import InferenceTimeoutError, InvalidInputError, ModelUnavailableError

# Request latency: a cached health check takes ~0.2 ms, a big forecast batch seconds, and
# request_timeout_seconds defaults to 10 s; 20 s catches anything slower than the budget.
REQUEST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
# session.run and queue waits: one small LSTM batch takes ~0.1-1 ms on CPU; max_queue_delay is ms.
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                 1.0, 2.5, 5.0, 10.0)  # fmt: skip
# Rows per session.run: powers of two up to past the default max_batch_size (256).
BATCH_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Values per forecast series as sent: m4-hourly needs >= 168, uses <= 336, accepts <= 10,000.
INPUT_LENGTH_BUCKETS = (24, 48, 96, 168, 240, 336, 500, 672, 1000, 2500, 5000, 10000)

# The *_created samples double the series count and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

REJECT_REASONS = ("queue_full", "timeout", "invalid_input", "unavailable")
UNMATCHED_ROUTE = "unmatched"

REQUESTS = Counter(
    "seqserve_requests_total", "HTTP requests answered, by route template and status code.",
    ["route", "status"],
)  # fmt: skip
REQUEST_DURATION = Histogram(
    "seqserve_request_duration_seconds", "Time from request start to the last response byte.",
    ["route"], buckets=REQUEST_BUCKETS,
)  # fmt: skip
REQUESTS_IN_PROGRESS = Gauge(
    "seqserve_requests_in_progress", "HTTP requests being handled now.", ["route"],
    multiprocess_mode="livesum",
)  # fmt: skip
INFERENCE_ROWS = Counter(
    "seqserve_inference_rows_total", "Rows (series or texts) run through a model.", ["model", "version"]
)
BATCH_ROWS = Histogram(
    "seqserve_batch_rows", "Rows per executed session.run call.", ["model"], buckets=BATCH_ROW_BUCKETS
)
QUEUE_WAIT = Histogram(
    "seqserve_queue_wait_seconds", "Time a request's rows waited in the model queue before their batch ran.",
    ["model"], buckets=STAGE_BUCKETS,
)  # fmt: skip
INFERENCE_DURATION = Histogram(
    "seqserve_inference_duration_seconds", "Wall time of one session.run call.", ["model"],
    buckets=STAGE_BUCKETS,
)  # fmt: skip
QUEUE_ROWS = Gauge(
    "seqserve_queue_rows", "Rows waiting in the model's batch queue.", ["model"], multiprocess_mode="livesum"
)
REJECTED = Counter(
    "seqserve_rejected_requests_total", "Requests refused for a chosen model, by reason.", ["model", "reason"]
)
MODEL_INFO = Gauge(
    "seqserve_model_info", "1 for each model version being served, with its execution provider.",
    ["model", "version", "provider"], multiprocess_mode="livemax",
)  # fmt: skip
BUILD_INFO = Gauge(
    "seqserve_build_info",
    "Always 1; the service version as a label.",
    ["version"],
    multiprocess_mode="livemax",
)
SENTIMENT_PREDICTIONS = Counter(
    "seqserve_sentiment_predictions_total", "Texts classified, by predicted label.", ["model", "label"]
)
FORECAST_INPUT_LENGTH = Histogram(
    "seqserve_forecast_input_length", "Values per forecast series as sent (before cutting to context).",
    ["model"], buckets=INPUT_LENGTH_BUCKETS,
)  # fmt: skip

# Generation: time to first token includes queueing for a slot's prefill; inter-token is one decode step.
TTFT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INTER_TOKEN_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.1, 0.25, 0.5, 1.0)
GENERATION_TTFT = Histogram(
    "seqserve_generation_time_to_first_token_seconds",
    "Time from a generation's admission to its first token (prefill included).",
    ["model"], buckets=TTFT_BUCKETS,
)  # fmt: skip
GENERATION_INTER_TOKEN = Histogram(
    "seqserve_generation_inter_token_seconds", "Time between consecutive tokens of one generation.",
    ["model"], buckets=INTER_TOKEN_BUCKETS,
)  # fmt: skip
GENERATED_TOKENS = Counter(
    "seqserve_generated_tokens_total", "Tokens generated, over all streams.", ["model"]
)
GENERATION_ACTIVE_STREAMS = Gauge(
    "seqserve_generation_active_streams", "Generations admitted and not yet finished or cancelled.",
    ["model"], multiprocess_mode="livesum",
)  # fmt: skip
GENERATION_STREAMS_PER_STEP = Histogram(
    "seqserve_generation_streams_per_step", "Streams advanced by one decode session.run.",
    ["model"], buckets=BATCH_ROW_BUCKETS,
)  # fmt: skip


class BoundHistogram:
    """One histogram series, observed without prometheus_client's per-call checks.

    ``Histogram.observe`` checks that the series is observable and walks the buckets in Python on every
    call; a forecast request observes three series on the event loop. ``bisect_left`` over the same
    upper bounds picks the same bucket (the first bound with ``amount <= bound``) in C.
    """

    __slots__ = ("_bounds", "_buckets", "_child", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        # prometheus_client's own per-series values (mmap-backed in multiprocess mode), so the
        # exposition and every other writer see exactly what observe() would have written.
        self._bounds: list[float] = child._upper_bounds
        self._buckets = child._buckets
        self._sum = child._sum

    def observe(self, amount: float) -> None:
        if amount != amount:  # NaN falls in no bucket in prometheus_client; keep its behaviour
            self._child.observe(amount)
            return
        self._sum.inc(amount)
        self._buckets[bisect_left(self._bounds, amount)].inc(1)

    def observe_many(self, amounts: Sequence[float]) -> None:
        """``observe`` each amount, with one write per bucket touched and one for the sum.

        A batch's queue waits mostly share one or two buckets; observed one by one they were two
        multiprocess file writes per request on the event loop.
        """
        if not amounts:
            return
        if any(a != a for a in amounts):
            for amount in amounts:
                self.observe(amount)
            return
        counts: dict[int, int] = {}
        for amount in amounts:
            index = bisect_left(self._bounds, amount)
            counts[index] = counts.get(index, 0) + 1
        for index, count in counts.items():
            self._buckets[index].inc(count)
        self._sum.inc(sum(amounts))


def multiprocess_enabled() -> bool:
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


class ModelMetrics:
    """The per-model metrics, bound once (no label lookups per batch); a ``BatchObserver`` for the batcher.

    Creating it pre-creates every series of the model at 0.
    """

    def __init__(self, model: str, version: int | str) -> None:
        self.model = model
        self._rows = INFERENCE_ROWS.labels(model, str(version))
        self._batch_rows = BoundHistogram(BATCH_ROWS.labels(model))
        self._queue_wait = BoundHistogram(QUEUE_WAIT.labels(model))
        self._inference = BoundHistogram(INFERENCE_DURATION.labels(model))
        self._queue_rows = QUEUE_ROWS.labels(model)
        self._queue_rows.set(0)
        self._rejected = {reason: REJECTED.labels(model, reason) for reason in REJECT_REASONS}

    def queue_rows(self, rows: int) -> None:
        self._queue_rows.set(rows)

    def batch_done(self, rows: int, queue_wait_seconds: Sequence[float], inference_seconds: float) -> None:
        """One session.run finished: ``queue_wait_seconds`` has one entry per request chunk in the batch."""
        self._rows.inc(rows)
        self._batch_rows.observe(rows)
        self._inference.observe(inference_seconds)
        self._queue_wait.observe_many(queue_wait_seconds)

    def rejected(self, reason: str) -> None:
        # An unknown reason is a programming error; raising keeps the label set bounded.
        self._rejected[reason].inc()


def reject(model: str, reason: str) -> None:
    """Count a refused request for a known model; ``reason`` must be one of ``REJECT_REASONS``."""
    if reason not in REJECT_REASONS:
        raise ValueError(f"unknown rejection reason {reason!r}; add it to REJECT_REASONS")
    REJECTED.labels(model, reason).inc()


# Errors that mean "this model refused the request". QueueFullError is absent on purpose: the batcher
# reports queue_full itself (ModelMetrics.rejected), so counting it here would count it twice.
_REJECTION_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (InvalidInputError, "invalid_input"),
    (InferenceTimeoutError, "timeout"),
    (ModelUnavailableError, "unavailable"),
)


def count_rejection(model: str, exc: BaseException) -> None:
    """A handler call for a resolved model raised ``exc``: count it if it is a rejection (not a fault)."""
    reason = next((r for cls, r in _REJECTION_REASONS if isinstance(exc, cls)), None)
    if reason is not None:
        reject(model, reason)


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: int
    provider: str


_published: set[tuple[str, str, str]] = set()


def publish_models(models: Iterable[ServedModel]) -> None:
    """Make ``seqserve_model_info`` say exactly which versions are served, after every (re)load."""
    current = {(m.name, str(m.version), m.provider) for m in models}
    for labels in _published - current:
        # Removal is not implemented in multiprocess mode; 0 says "no longer served" there.
        if multiprocess_enabled():
            MODEL_INFO.labels(*labels).set(0)
        else:
            MODEL_INFO.remove(*labels)
    for labels in current:
        MODEL_INFO.labels(*labels).set(1)
    _published.clear()
    _published.update(current)


def mark_started() -> None:
    BUILD_INFO.labels(__version__).set(1)


class SentimentLabelCounts:
    """A sentiment model's prediction counters, one per manifest label, bound once (``labels()`` costs a
    lock per call); creating it pre-creates the series at 0."""

    def __init__(self, model: str, labels: Iterable[str]) -> None:
        self._by_label = {label: SENTIMENT_PREDICTIONS.labels(model, label) for label in labels}

    def count(self, labels: Iterable[str]) -> None:
        # Predicted labels come from the manifest's list, so the label set stays bounded.
        for label in labels:
            self._by_label[label].inc()


def register_sentiment_model(model: str, labels: Iterable[str]) -> SentimentLabelCounts:
    return SentimentLabelCounts(model, labels)


class GenerationMetrics:
    """One generate model's series, bound once and created at 0 (the scheduler records from its thread)."""

    def __init__(self, model: str) -> None:
        self.ttft = GENERATION_TTFT.labels(model)
        self.inter_token = GENERATION_INTER_TOKEN.labels(model)
        self.tokens = GENERATED_TOKENS.labels(model)
        # Only ever inc/dec: a hot reload binds again while the old version's streams still count.
        self.active_streams = GENERATION_ACTIVE_STREAMS.labels(model)
        self.streams_per_step = GENERATION_STREAMS_PER_STEP.labels(model)


class ForecastInputLengths:
    """A forecast model's input-length series, bound once: ``labels()`` costs a lock per request."""

    def __init__(self, model: str) -> None:
        self._histogram = BoundHistogram(FORECAST_INPUT_LENGTH.labels(model))

    def observe(self, lengths: Iterable[int]) -> None:
        for length in lengths:
            self._histogram.observe(length)


def register_forecast_model(model: str) -> ForecastInputLengths:
    return ForecastInputLengths(model)


class _RouteSeries:
    """One route's HTTP series, bound once: ``labels()`` costs a lock and a dict lookup per call."""

    def __init__(self, route: str) -> None:
        self.route = route
        self.in_progress = REQUESTS_IN_PROGRESS.labels(route)
        self.duration = BoundHistogram(REQUEST_DURATION.labels(route))
        self._by_status: dict[int, Counter] = {}

    def requests(self, status: int) -> Counter:
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = REQUESTS.labels(self.route, str(status))
        return counter


# Keys are route templates (bounded by the app's routes plus "unmatched"), never raw paths.
_route_series: dict[str, _RouteSeries] = {}


def _series_for(route: str) -> _RouteSeries:
    series = _route_series.get(route)
    if series is None:
        series = _route_series[route] = _RouteSeries(route)
    return series


class RequestTimer:
    """Route-level HTTP metrics for one request: in-progress while alive, then count and duration."""

    def __init__(self, route: str) -> None:
        self._series = _series_for(route)
        self._started = time.perf_counter()
        self._series.in_progress.inc()

    def finish(self, status: int) -> None:
        series = self._series
        series.in_progress.dec()
        series.requests(status).inc()
        series.duration.observe(time.perf_counter() - self._started)

    def cancel(self) -> None:
        """No longer in progress and not counted: another timer (the full stack's) takes the request."""
        self._series.in_progress.dec()


def register_routes(routes: Iterable[str]) -> None:
    for route in routes:
        _series_for(route)
