"""Evaluation reports with pictures, written next to a model's manifest.

``python -m training report models/<name>/<version>`` (re)writes ``report.md`` and its PNGs from the
ONNX artifact and the test data, and lists each file with its sha256 and size in the manifest's
``files``, like every other artifact; the service serves exactly those (GET
/v1/models/{name}/versions/{version}/files/{file}) and the playground's model cards link to them. The
training pipelines call :func:`write_report` at the end. matplotlib is a training extra, never a service
dependency.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Figure objects, not pyplot: no global state and no display backend, the Agg canvas writes the PNGs.
from matplotlib.figure import Figure

from training.manifest import sha256_file

REPORT = "report.md"
PREFIX = "report_"
DPI = 100
# Deterministic PNGs: no software/version stamp in the metadata.
PNG_METADATA = {"Software": None}


class Section:
    """Figures and Markdown of one report, collected by a task's builder."""

    def __init__(self, version_dir: Path) -> None:
        self.version_dir = version_dir
        self.lines: list[str] = []
        self.files: list[str] = []

    def text(self, *lines: str) -> None:
        self.lines.extend(lines)

    def figure(self, stem: str, fig: Figure, caption: str) -> None:
        name = f"{PREFIX}{stem}.png"
        fig.savefig(self.version_dir / name, dpi=DPI, metadata=PNG_METADATA, bbox_inches="tight")
        self.files.append(name)
        self.lines.extend([f"![{caption}]({name})", "", f"*{caption}*", ""])


def new_figure(width: float = 7.5, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height))
    fig.set_layout_engine("constrained")
    return fig


def _builders() -> dict[str, Callable[[Section, dict[str, Any]], None]]:
    from training.report_forecast import forecast_report
    from training.report_sentiment import sentiment_report

    return {"forecast": forecast_report, "sentiment": sentiment_report}


def write_report(version_dir: Path) -> list[str]:
    """Write report.md and its pictures for the model in ``version_dir``; return the file names."""
    version_dir = Path(version_dir)
    manifest = json.loads((version_dir / "model.json").read_text())
    builder = _builders().get(manifest["task"])
    if builder is None:
        raise ValueError(f"no report for task {manifest['task']!r} (known: {sorted(_builders())})")
    for old in version_dir.glob(f"{PREFIX}*.png"):
        old.unlink()
    section = Section(version_dir)
    section.text(f"# {manifest['name']} v{manifest['version']}: evaluation report", "")
    if manifest.get("description"):
        section.text(manifest["description"], "")
    builder(section, manifest)
    command = f"python -m training report models/{manifest['name']}/{manifest['version']}"
    section.text(
        "---",
        f"Written by `{command}` from `model.onnx` "
        "(onnxruntime, CPU) and the test data named in `model.json`; "
        "the numbers in the tables are the manifest's.",
        "",
    )
    (version_dir / REPORT).write_text("\n".join(section.lines))
    files = [*section.files, REPORT]
    record_files(version_dir, files)
    return files


def record_files(version_dir: Path, names: list[str]) -> None:
    """Add (or refresh) these files' checksums in model.json, leaving every other key as it is.

    The manifest is re-read just before writing and only these ``files`` entries change (and stale
    report entries go), because other tools (e.g. the drift profile) may write the same manifest.
    """
    entries = {
        n: {"sha256": sha256_file(version_dir / n), "bytes": (version_dir / n).stat().st_size} for n in names
    }
    path = version_dir / "model.json"
    manifest = json.loads(path.read_text())
    files = {
        name: entry
        for name, entry in manifest.get("files", {}).items()
        if not (name == REPORT or name.startswith(PREFIX)) or name in entries
    }
    files.update(entries)
    manifest["files"] = files
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
