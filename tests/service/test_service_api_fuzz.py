"""Whatever JSON a client sends, the answer is 200 or a 4xx with the error shape, never a 5xx."""

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import assert_error

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)
values = st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(), max_size=400) | st.lists(
    # Long enough to reach the model, with magnitudes up to float32's edge and beyond.
    st.floats(-1e39, 1e39) | st.floats(-10, 10),
    min_size=168,
    max_size=400,
)
series = st.fixed_dictionaries(
    {"values": values}, optional={"id": st.none() | st.text(max_size=5) | st.integers()}
)
bodies = (
    st.fixed_dictionaries(
        {"series": st.lists(series, max_size=3)},
        optional={
            "horizon": st.integers(-2, 60) | st.none() | st.floats(),
            "quantiles": st.lists(st.sampled_from([0.05, 0.1, 0.5, 0.9, 0.33, -1.0]), max_size=4) | st.none(),
            "model": st.sampled_from(["m4-hourly", "nope"]) | st.none(),
        },
    )
    | json_values
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_never_5xx(client: TestClient, body: Any) -> None:
    # allow_nan: the stdlib encoder writes NaN/Infinity tokens, which the service must refuse cleanly.
    response = client.post(
        "/v1/forecast", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    if response.status_code != 200:
        assert_error(response, response.status_code)
        assert 400 <= response.status_code < 500
