"""Building an onnxruntime session and checking it against the manifest's tensor specs."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from service.config import Settings
from service.runtime.manifest import ORT_ELEMENT_TYPES, ModelManifest, TensorSpec

# Session config entry that makes a session allocate from the allocators registered with ORT's environment.
SHARED_ARENA_ENTRY = "session.use_env_allocators"
_arena_lock = threading.Lock()
_arena_registered = False


class ArenaShrink:
    """Hands the free regions of ORT's CPU arena back to the kernel once a model has gone quiet.

    The arena keeps every region it ever grew, so after a burst on one model (the ensemble at 16 rows per
    run grows it by about 12 MB) the worker would hold that memory while other models serve. ORT frees
    regions with no live tensor at the end of a run that carries the shrink option; with the shared
    arena, a run of any model frees them for all. ``check`` runs periodically
    (``SEQSERVE_MEMORY_RELEASE_SECONDS``): when a model that ran in the previous period ran no more in
    this one, the next run of any model carries the option. Under steady traffic no model goes quiet
    and nothing is shrunk, so no run pays for faulting its buffers in again (2.6 ms measured for an
    ensemble run of 16 rows, against 9 ms for the run).
    """

    def __init__(self) -> None:
        self._due = False
        self._options = ort.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        # Runs per model (by label); batch threads add, the periodic check reads. A lost increment
        # between two threads only delays a shrink by one period.
        self._runs: dict[str, int] = {}
        # The counts of the models that ran in the last period (its keys are those models).
        self._seen: dict[str, int] = {}

    def claim(self, model: str) -> Any:
        """The run options for this run of ``model``: the shrink when one is due, else None."""
        self._runs[model] = self._runs.get(model, 0) + 1
        if not self._due:
            return None
        self._due = False  # two threads may both take it: two shrinks, harmless
        return self._options

    def check(self) -> bool:
        """Make a shrink due when a model that ran in the last period did not run in this one."""
        runs = dict(self._runs)  # one C-level copy under the GIL: safe against concurrent inserts
        active = {model for model, count in runs.items() if count != self._seen.get(model, 0)}
        went_quiet = bool(self._seen.keys() - active)
        if went_quiet:
            self._due = True
        # Quiet models are forgotten, so unloaded versions do not pile up; a later run counts from 1
        # again, which is a change, so it is seen as active. (A run racing this pop is missed once.)
        for model in runs.keys() - active:
            self._runs.pop(model, None)
        self._seen = {model: runs[model] for model in active}
        return went_quiet


ARENA_SHRINK = ArenaShrink()


class SpecMismatchError(Exception):
    """The graph's inputs or outputs are not what the manifest promises."""


def build_session(model_path: Path, providers: list[str], settings: Settings) -> Any:
    options = session_options(settings)
    return ort.InferenceSession(str(model_path), sess_options=options, providers=providers)


def session_options(settings: Settings) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads(settings)
    options.inter_op_num_threads = settings.ort_inter_op_threads
    # Spinning threads burn a core while idle; with several workers that core belongs to a neighbour.
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if settings.ort_allow_spinning else "0"
    )
    # The arena keeps its peak, so memory is bounded by max_batch_size (LSTM buffers scale with rows x
    # length), so RSS stays flat after large batches at a level set by the cap.
    options.enable_cpu_mem_arena = settings.ort_cpu_mem_arena
    if settings.ort_cpu_mem_arena and settings.ort_shared_cpu_arena:
        # One arena for every session of the process: each session's own arena kept its own peak, so a
        # worker held the sum of all models' peaks; shared, it holds about the largest (docs/memory.md).
        _register_shared_cpu_arena()
        options.add_session_config_entry(SHARED_ARENA_ENTRY, "1")
    return options


def _register_shared_cpu_arena() -> None:
    """Register the process-wide CPU arena with ORT's environment, once; sessions opt in per options."""
    global _arena_registered
    with _arena_lock:
        if _arena_registered:
            return
        memory_info = ort.OrtMemoryInfo(
            "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
        )
        # ORT's defaults (no cap, grow by powers of two, default first chunk); kSameAsRequested measured
        # a higher RSS after traffic.
        ort.create_and_register_allocator(memory_info, ort.OrtArenaCfg(0, 0, -1, -1))
        _arena_registered = True


def cores_per_worker(settings: Settings) -> int:
    """The CPU cores this process may use, shared evenly among the workers (at least one)."""
    return max(1, len(os.sched_getaffinity(0)) // settings.workers)


def intra_op_threads(settings: Settings) -> int:
    """Explicit setting, else the worker's share of the cores."""
    if settings.ort_intra_op_threads:
        return settings.ort_intra_op_threads
    return cores_per_worker(settings)


def batch_lanes(settings: Settings) -> int:
    """Concurrent micro-batches per model: explicit setting, else what the worker's cores can run."""
    return settings.batch_lanes or _lanes_for_cores(settings)


def generation_lanes(settings: Settings) -> int:
    """Continuous batches per generation model: explicit setting, else what the worker's cores can run."""
    return settings.generation_lanes or _lanes_for_cores(settings)


def _lanes_for_cores(settings: Settings) -> int:
    # Threads that each run session.run with intra_op_threads threads, filling the worker's cores;
    # capped as the explicit settings are.
    return min(16, max(1, cores_per_worker(settings) // intra_op_threads(settings)))


def check_tensor_specs(session: Any, manifest: ModelManifest) -> None:
    """Refuse a graph whose names, element types, ranks or static dims differ from the manifest."""
    problems = _compare("input", session.get_inputs(), manifest.inputs) + _compare(
        "output", session.get_outputs(), manifest.outputs
    )
    if problems:
        raise SpecMismatchError("graph does not match manifest: " + "; ".join(problems))


def _compare(kind: str, actual: Sequence[Any], declared: Sequence[TensorSpec]) -> list[str]:
    actual_by_name = {node.name: node for node in actual}
    declared_names = [spec.name for spec in declared]
    if sorted(actual_by_name) != sorted(declared_names):
        return [f"{kind} names: graph has {sorted(actual_by_name)}, manifest has {sorted(declared_names)}"]
    problems: list[str] = []
    for spec in declared:
        node = actual_by_name[spec.name]
        expected_type = ORT_ELEMENT_TYPES[spec.datatype]
        if node.type != expected_type:
            problems.append(f"{kind} {spec.name!r}: graph type {node.type}, manifest {spec.datatype}")
        if len(node.shape) != len(spec.shape):
            problems.append(
                f"{kind} {spec.name!r}: graph rank {len(node.shape)}, manifest shape {spec.shape}"
            )
            continue
        for axis, (graph_dim, spec_dim) in enumerate(zip(node.shape, spec.shape, strict=True)):
            graph_static = isinstance(graph_dim, int)
            if spec_dim == -1 and graph_static:
                # The manifest promises a dynamic axis the graph cannot honour.
                problems.append(
                    f"{kind} {spec.name!r} axis {axis}: graph fixes it to {graph_dim}, manifest -1"
                )
            elif spec_dim != -1 and graph_static and graph_dim != spec_dim:
                problems.append(f"{kind} {spec.name!r} axis {axis}: graph {graph_dim}, manifest {spec_dim}")
            # A symbolic graph dim under a static manifest dim is checked at warm-up by the runner.
    return problems
