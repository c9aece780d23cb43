"""PNG plots of an evaluation (matplotlib, drawn without pyplot: no global state).

- ``metrics.png``: one bar chart per metric, every method next to the ground truth;
- ``curves.png``: jawOpen, yaw and eyelid closure over time on the longest held-out
  segment, ground truth against each generator's first seed;
- ``capp_shift.png``: the CAPP score of held-out ground truth shifted against its audio.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from avatar.eval.report import GROUND_TRUTH, METRICS
from avatar.fileio import atomic_write

if TYPE_CHECKING:
    from avatar.eval.results import Evaluation, Sample

METRICS_PNG, CURVES_PNG, SHIFT_PNG = "metrics.png", "curves.png", "capp_shift.png"
DPI = 110
PANEL_INCHES = (3.2, 2.6)  # width, height of one bar chart
BAR_COLUMNS = 4
TRUTH_COLOUR, METHOD_COLOURS = "0.45", ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
# The ratio rows are the GT-relative view of metrics already drawn with the GT bar.
BAR_METRICS = tuple(m for m in METRICS if not m.key.endswith("_ratio"))
CURVES = (("jawOpen", "jawOpen", lambda m: m.action("jawOpen")),
          ("yaw", "yaw (deg)", lambda m: np.degrees(m.rotation[:, 0])),
          ("blink", "eyelid closure", lambda m: m.blink))


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
    return path


def _colours(names: list[str]) -> list[str]:
    cycle = iter(METHOD_COLOURS * len(names))
    return [TRUTH_COLOUR if n == GROUND_TRUTH else next(cycle) for n in names]


def metric_bars(result: "Evaluation"):
    """A figure with one bar chart per metric."""
    names = list(result.table)
    rows = -(-len(BAR_METRICS) // BAR_COLUMNS)
    fig = Figure(figsize=(PANEL_INCHES[0] * BAR_COLUMNS, PANEL_INCHES[1] * rows))
    fig.subplots_adjust(left=0.06, right=0.98, top=0.95, bottom=0.08, wspace=0.35, hspace=0.75)
    axes = fig.subplots(rows, BAR_COLUMNS, squeeze=False).ravel()
    for ax, m in zip(axes, BAR_METRICS):
        values = [result.table[n].get(m.key, np.nan) for n in names]
        ax.bar(range(len(names)), np.nan_to_num(values, nan=0.0), color=_colours(names))
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{m.label} ({m.goal})", fontsize=9)
        if m.unit:
            ax.set_ylabel(m.unit, fontsize=8)
    for ax in axes[len(BAR_METRICS):]:
        ax.set_axis_off()
    return fig


def _first_seeds(result: "Evaluation", label: str) -> list["Sample"]:
    """The ground truth and each method's first seed on the segment ``label``."""
    seen, out = set(), []
    for s in result.samples:
        if s.segment.label == label and s.method not in seen:
            seen.add(s.method)
            out.append(s)
    return out


def example_curves(result: "Evaluation"):
    """A figure of jawOpen, yaw and blink over time on the longest held-out segment."""
    longest = max((s.segment for s in result.samples), key=lambda seg: seg.num_frames)
    samples = _first_seeds(result, longest.label)
    fig = Figure(figsize=(10, 7))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.95, bottom=0.08, hspace=0.15)
    axes = fig.subplots(len(CURVES), 1, sharex=True)
    colours = _colours([s.method for s in samples])
    for ax, (_, label, curve) in zip(axes, CURVES):
        for s, colour in zip(samples, colours):
            t = np.arange(len(s.motion)) / s.motion.fps
            ax.plot(t, curve(s.motion), color=colour, lw=1.2, label=s.method)
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_title(f"held-out {longest.label}", fontsize=10)
    axes[-1].set_xlabel("time (s)")
    return fig


def shift_curve(result: "Evaluation"):
    """A figure of the CAPP score against the shift of motion vs. audio (frames)."""
    fig = Figure(figsize=(6, 3.5))
    fig.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.15)
    ax = fig.subplots()
    shifts = list(result.capp_shift)
    ax.plot(shifts, list(result.capp_shift.values()), "o-", color=METHOD_COLOURS[0])
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("motion shifted against audio (frames)")
    ax.set_ylabel("CAPP score")
    ax.set_title("CAPP on held-out ground truth", fontsize=10)
    return fig


def write_plots(result: "Evaluation", out_dir: Path) -> list[Path]:
    """Write metrics.png, curves.png and (when measured) capp_shift.png; their paths."""
    files = [_save(metric_bars(result), out_dir / METRICS_PNG),
             _save(example_curves(result), out_dir / CURVES_PNG)]
    if result.capp_shift:
        files.append(_save(shift_curve(result), out_dir / SHIFT_PNG))
    return files
