"""Rolling update and scale-down of real replicas behind a real HAProxy lose no request.

Three ``python -m service`` replicas (one worker each) sit behind Debian's HAProxy, which health-checks
``/readyz`` every 250 ms the way a Kubernetes Service follows its pods' readiness. Client threads send a
constant stream of real forecast requests through it over keep-alive connections. Each replica is then
replaced in turn as a Deployment with maxSurge 1 / maxUnavailable 0 does it: the new replica starts, and
once it is ready it joins the backend (the endpoint is added); then the old one gets SIGTERM. Its drain
period (``SEQSERVE_DRAIN_SECONDS``, the stand-in for the preStop pause: HAProxy learns only from
readiness) fails /readyz at once while it keeps serving, HAProxy takes it out of rotation, and only then
does it close its listener and finish its in-flight requests. Finally the backend scales from 3 to 2.

Every request must get a 200: no failed requests, no connection resets, no HAProxy retries. The counts
are printed (``pytest -s``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from haproxy_tools import HAProxy
from replica_tools import Replica, forecast_body, forecast_only_repository, free_port, start_replica

THREADS = 4
# Between a thread's requests: a steady ~100-150 requests/s that leaves CPU for replicas starting up.
PAUSE_SECONDS = 0.02
# Longer than HAProxy needs to see two failed checks (fall 2 x inter 250 ms, plus the check itself).
DRAIN_SECONDS = 2
SERIES_PER_REQUEST = 4


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)


def _load(base: str, stop: threading.Event, tally: Tally) -> None:
    body = forecast_body(SERIES_PER_REQUEST)
    with httpx.Client(base_url=base, timeout=60) as client:
        while not stop.is_set():
            try:
                response = client.post("/v1/forecast", json=body)
                reset = None
                failure = None if response.status_code == 200 else f"{response.status_code} {response.text}"
            except httpx.TransportError as exc:
                failure, reset = None, f"{type(exc).__name__}: {exc}"
            with tally.lock:
                tally.requests += 1
                if reset is not None:
                    tally.resets.append(reset)
                elif failure is not None:
                    tally.failed.append(failure)
                else:
                    tally.ok += 1
            time.sleep(PAUSE_SECONDS)


def _wait_for_requests(tally: Tally, more: int) -> None:
    target = tally.requests + more
    deadline = time.monotonic() + 60
    while tally.requests < target:
        assert time.monotonic() < deadline, "the load stalled"
        time.sleep(0.05)


def test_rolling_update_and_scale_down_behind_haproxy_lose_no_request(tmp_path: Path) -> None:
    slot_ports = [free_port() for _ in range(4)]
    haproxy = HAProxy(tmp_path, free_port(), slot_ports)
    models = forecast_only_repository(tmp_path)
    env = {"SEQSERVE_DRAIN_SECONDS": str(DRAIN_SECONDS)}
    replicas: dict[str, Replica] = {}
    exit_codes: dict[str, int] = {}
    stop = threading.Event()
    tally = Tally()
    threads = [
        threading.Thread(target=_load, args=(f"http://127.0.0.1:{haproxy.port}", stop, tally), daemon=True)
        for _ in range(THREADS)
    ]

    def bring_up(slot: str) -> None:
        replicas[slot] = start_replica(tmp_path, models, port=haproxy.slots[slot], extra_env=env)
        replicas[slot].wait_ready()
        haproxy.enable(slot)  # the endpoint is added once the pod is ready
        haproxy.wait_status(slot, "UP")

    def retire(slot: str) -> None:
        replica = replicas.pop(slot)
        replica.proc.terminate()
        haproxy.wait_status(slot, "DOWN")
        # Readiness failed while the replica was still serving: the order the drain exists for.
        assert replica.proc.poll() is None, f"{slot} exited before HAProxy took it out: {replica.tail()}"
        exit_codes[f"{slot}@{replica.proc.pid}"] = replica.proc.wait(timeout=60)
        haproxy.disable(slot)  # the endpoint is removed once the pod is gone
        _wait_for_requests(tally, 20)

    try:
        for slot in ("s0", "s1", "s2"):
            replicas[slot] = start_replica(tmp_path, models, port=haproxy.slots[slot], extra_env=env)
        for slot in ("s0", "s1", "s2"):
            replicas[slot].wait_ready()
            haproxy.enable(slot)
            haproxy.wait_status(slot, "UP")
        for thread in threads:
            thread.start()
        _wait_for_requests(tally, 50)
        for old, new in (("s0", "s3"), ("s1", "s0"), ("s2", "s1")):
            bring_up(new)
            retire(old)
        before_scale_down = tally.requests
        retire("s3")  # 3 -> 2 replicas
        _wait_for_requests(tally, 50)
        after_scale_down = tally.requests - before_scale_down
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
        stats = haproxy.stats()
        haproxy.stop()
        for replica in replicas.values():
            exit_codes[f"left@{replica.proc.pid}"] = replica.stop()

    backend = stats["BACKEND"]
    served = {slot: int(stats[slot]["hrsp_2xx"]) for slot in haproxy.slots}
    print(
        f"\nrolling update: {tally.requests} requests, {tally.ok} ok, {len(tally.failed)} failed, "
        f"{len(tally.resets)} connection errors; HAProxy retries {backend['wretr']}, redispatches "
        f"{backend['wredis']}, 5xx {backend['hrsp_5xx']}; 200s per slot {served}; "
        f"{after_scale_down} requests after the scale-down"
    )
    assert not any(t.is_alive() for t in threads), "a load thread hung"
    assert tally.failed == [], tally.failed[:5]
    assert tally.resets == [], tally.resets[:5]
    assert tally.ok == tally.requests > 0
    assert (backend["wretr"], backend["wredis"], backend["hrsp_5xx"]) == ("0", "0", "0"), backend
    assert set(exit_codes.values()) == {0}, exit_codes
    # Every replica, old and new, really served through the balancer.
    assert all(count > 0 for count in served.values()), served
    assert after_scale_down >= 50
