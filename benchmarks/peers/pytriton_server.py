"""PyTriton serving an ONNX forecaster with Triton's dynamic batcher, configured as a user would.

Runs inside the peer's own virtual environment (benchmarks/peers/pytriton_peer.py creates it), never
the project's: it imports only pytriton, onnxruntime and numpy. One ORT session with one intra-op
thread per model instance; Triton's dynamic batcher groups requests up to ``--max-batch`` rows and
waits at most ``--max-queue-delay-us`` for a batch to fill. Clients speak V2 JSON on ``--http-port``.

Usage: python pytriton_server.py MODEL.onnx --http-port P --grpc-port G --metrics-port M
"""

from __future__ import annotations

import argparse
import os
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def make_infer(model_path: str, threads: int) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    output_name = sess.get_outputs()[0].name

    @batch
    def infer(values: np.ndarray) -> dict[str, np.ndarray]:
        (out,) = sess.run([output_name], {input_name: values.astype(np.float32, copy=False)})
        return {"quantiles": out}

    return infer


def use_own_libpython() -> None:
    """Make Triton's Python stub load this interpreter's libpython, not another 3.x.y on the system.

    The stub links libpython3.X.so.1.0 by name; with a pyenv/uv interpreter the loader finds the
    distribution's copy first (another patch release), whose C modules then disagree with this
    interpreter's stdlib (seen here: 3.11.2's RLock under 3.11.7's multiprocessing).
    """
    libdir = sysconfig.get_config_var("LIBDIR")
    ldlib = sysconfig.get_config_var("LDLIBRARY")
    if libdir and ldlib and (Path(libdir) / ldlib).exists():
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--name", default="m4-hourly")
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="ORT intra-op threads per instance")
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--max-queue-delay-us", type=int, default=2000)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--grpc-port", type=int, required=True)
    p.add_argument("--metrics-port", type=int, required=True)
    args = p.parse_args()
    use_own_libpython()
    config = TritonConfig(
        http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port, log_verbose=0
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=args.name,
            # A list of callables: one Triton model instance each.
            infer_func=[make_infer(args.model, args.threads) for _ in range(args.instances)],
            inputs=[Tensor(name="values", dtype=np.float32, shape=(-1,))],
            outputs=[Tensor(name="quantiles", dtype=np.float32, shape=(-1, -1))],
            config=ModelConfig(
                max_batch_size=args.max_batch,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_queue_delay_us),
            ),
            strict=False,
        )
        triton.serve()


if __name__ == "__main__":
    main()
