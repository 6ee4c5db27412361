"""Cutting a micro-batch into the session.run calls of the model's preferred size.

A batch of texts is padded to its longest text. Cut into parts as it came, every part would still
carry that width, and an LSTM pays for every padded step of every row. So when a model declares
paddable inputs (ones whose graph masks right-padding), rows are first ordered by the width they
actually use, and each part keeps only the columns some row in it uses: short reviews run with short
reviews, at their own width. The graph masks padding, so no answer changes; the outputs are put
back in the batch's order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray[Any, Any]]
Outputs = list[np.ndarray[Any, Any]]


def run_in_parts(
    run: Callable[[Arrays], Outputs], feeds: Arrays, rows: int, step: int, pad_values: Mapping[str, Any]
) -> Outputs:
    """``run`` over parts of at most ``step`` rows; the outputs, concatenated in the feeds' row order."""
    paddable = [name for name in pad_values if name in feeds and feeds[name].ndim == 2]
    if not paddable:
        parts = [run({n: a[s : s + step] for n, a in feeds.items()}) for s in range(0, rows, step)]
        return [np.concatenate([np.asarray(p[i]) for p in parts]) for i in range(len(parts[0]))]
    widths = np.max([used_widths(feeds[name], pad_values[name]) for name in paddable], axis=0)
    order = np.argsort(widths, kind="stable")
    outputs: list[Outputs] = []
    for start in range(0, rows, step):
        taken = order[start : start + step]
        width = max(1, int(widths[taken].max()))
        part = {n: a[taken, :width] if n in paddable else a[taken] for n, a in feeds.items()}
        outputs.append(run(part))
    restore = np.empty_like(order)
    restore[order] = np.arange(rows)
    return [np.concatenate([np.asarray(p[i]) for p in outputs])[restore] for i in range(len(outputs[0]))]


def used_widths(array: np.ndarray[Any, Any], pad_value: Any) -> np.ndarray[Any, Any]:
    """Per row, the number of columns up to and including its last value that is not padding."""
    used = array != pad_value
    last_from_end = np.argmax(used[:, ::-1], axis=1)
    return np.where(used.any(axis=1), array.shape[1] - last_from_end, 0)
