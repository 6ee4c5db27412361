"""Version policies: several versions side by side, pinned per request, listed, and refused when unloaded."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from svc_helpers import make_settings, read_m4_series

from service.app import create_app
from service.runtime.versions import VersionPolicy

SERIES = read_m4_series(1)[0][1][-336:]
BODY = {"inputs": [{"name": "values", "datatype": "FP32", "shape": [1, 336], "data": SERIES}]}


@pytest.mark.parametrize(
    ("text", "kind", "count", "versions"),
    [("default", "default", 1, ()), ("latest", "latest", 1, ()), ("latest:3", "latest", 3, ()),
     ("all", "all", 1, ()), ("specific:3,1", "specific", 1, (1, 3))],
)  # fmt: skip
def test_policy_forms(text: str, kind: str, count: int, versions: tuple[int, ...]) -> None:
    policy = VersionPolicy.parse(text)
    assert (policy.kind, policy.count, policy.versions) == (kind, count, versions)


@pytest.mark.parametrize("text", ["newest", "latest:0", "latest:-1", "specific:", "specific:a", "all:2"])
def test_unknown_policies_are_refused_at_start(text: str) -> None:
    with pytest.raises(ValidationError, match="version policy"):
        make_settings(version_policy=text)
    with pytest.raises(ValidationError, match="m4-hourly"):
        make_settings(model_version_policies={"m4-hourly": text})


def test_all_versions_side_by_side() -> None:
    with TestClient(create_app(make_settings(model_version_policies={"m4-hourly": "all"}))) as client:
        assert client.get("/v2/models/m4-hourly").json()["versions"] == ["1", "2"]
        listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        # v2 is the int8 variant, which opts out of being the default: unversioned requests get v1.
        assert listed["m4-hourly"]["versions"] == [1, 2] and listed["m4-hourly"]["version"] == 1
        answers = {}
        for version in ("1", "2"):
            response = client.post(f"/v2/models/m4-hourly/versions/{version}/infer", json=BODY)
            assert response.status_code == 200 and response.json()["model_version"] == version
            answers[version] = np.asarray(response.json()["outputs"][0]["data"])
        unversioned = client.post("/v2/models/m4-hourly/infer", json=BODY).json()
        assert unversioned["model_version"] == "1"
        np.testing.assert_array_equal(np.asarray(unversioned["outputs"][0]["data"]), answers["1"])
        assert not np.array_equal(answers["1"], answers["2"])  # two different graphs really answered
        index = client.post("/v2/repository/index").json()
        assert {(r["name"], r["version"], r["state"]) for r in index} >= {
            ("m4-hourly", "1", "READY"), ("m4-hourly", "2", "READY")}  # fmt: skip


def test_specific_policy_and_the_404_naming_loaded_versions() -> None:
    settings = make_settings(model_version_policies={"m4-hourly": "specific:2"})
    with TestClient(create_app(settings)) as client:
        assert client.get("/v2/models/m4-hourly").json()["versions"] == ["2"]
        # Only v2 is loaded, so it answers unversioned requests even though it opts out of the default.
        assert client.post("/v2/models/m4-hourly/infer", json=BODY).json()["model_version"] == "2"
        missing = client.post("/v2/models/m4-hourly/versions/1/infer", json=BODY)
        assert missing.status_code == 404 and "loaded versions: [2]" in missing.json()["error"]
        index = {(r["name"], r["version"]): r for r in client.post("/v2/repository/index").json()}
        assert index[("m4-hourly", "1")]["reason"] == "not selected by the version policy"


def test_a_policy_naming_a_missing_version_fails_that_model_only() -> None:
    settings = make_settings(model_version_policies={"m4-hourly": "specific:9"})
    with TestClient(create_app(settings)) as client:
        models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert models["m4-hourly"]["state"] == "failed" and "version(s) [9]" in models["m4-hourly"]["error"]
        assert models["sst2-bilstm"]["state"] == "ready"
