"""Tables of an evaluation: Markdown for people, CSV and JSON for tools.

- ``metrics.md``: one row per metric, one column per method (ground truth first), with
  what each metric means and which way is better, and the CAPP shift check;
- ``metrics.csv``: one row per method, one column per metric;
- ``segments.csv``: every (method, held-out segment, seed) with its per-segment metrics;
- ``results.json``: all of the above plus the settings.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from avatar.metrics.capp import misaligned_score
from avatar.fileio import atomic_write

if TYPE_CHECKING:
    from avatar.eval.results import Evaluation

GROUND_TRUTH = "ground truth"  # the row of the real motion in every table
RESULTS_JSON, METRICS_MD, METRICS_CSV, SEGMENTS_CSV = "results.json", "metrics.md", "metrics.csv", "segments.csv"
FORMAT = "avatar-evaluation"
VERSION = 1


@dataclass(frozen=True)
class MetricInfo:
    key: str
    label: str
    unit: str
    goal: str  # which way is better: "higher", "lower", "near GT", "near 1", "info"
    meaning: str


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("bilabial_closure", "Bilabial closure", "share", "higher",
               "p/b/m phones during which the lips close in at least one frame"),
    MetricInfo("opening_energy_corr", "Opening vs. loudness", "Pearson r", "near GT",
               "correlation of mouth opening with audio energy over frames"),
    MetricInfo("lmd_mouth", "Mouth LMD", "face widths", "lower",
               "mean distance of lip landmarks to the ground truth's, both rendered on the clip's face"),
    MetricInfo("capp", "CAPP", "cosine", "higher",
               "audio-motion fit by the contrastive model (VASA-1 4.2); ~0 when misaligned"),
    MetricInfo("fd_capp", "FD (CAPP space)", "", "lower",
               "Frechet distance of motion-window embeddings to held-out ground truth "
               "(ground-truth row: real training motion vs. held-out motion)"),
    MetricInfo("delta_p", "Delta P", "deg/frame", "near GT", "mean absolute head-angle change per frame (VASA-1)"),
    MetricInfo("delta_p_ratio", "Delta P / GT", "", "near 1", "Delta P relative to the ground truth"),
    MetricInfo("glo", "Glo", "deg", "near GT", "std over time of the head angles (Loopy)"),
    MetricInfo("glo_ratio", "Glo / GT", "", "near 1", "Glo relative to the ground truth"),
    MetricInfo("exp", "Exp", "coeff", "near GT", "std over time of the expression actions, blinks excluded (Loopy)"),
    MetricInfo("exp_ratio", "Exp / GT", "", "near 1", "Exp relative to the ground truth"),
    MetricInfo("blink_rate", "Blink rate", "1/min", "near GT", "eyelid closures above 0.5 lasting >= 40 ms"),
    MetricInfo("blink_ratio", "Blink rate / GT", "", "near 1", "blink rate relative to the ground truth"),
    MetricInfo("diversity_head", "Diversity (head)", "deg", "info",
               "mean pairwise distance of head angles between seeds, same audio"),
    MetricInfo("diversity_exp", "Diversity (expr.)", "coeff", "info",
               "mean pairwise distance of expression actions between seeds, same audio"),
    MetricInfo("rtf", "Real-time factor", "s/s", "lower", "generation seconds per second of motion"),
)


def _clean(value):
    """JSON-safe: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _fmt(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3g}"


def segment_rows(result: "Evaluation") -> list[dict]:
    """One dict per measured motion: method, clip, frames, seed and its metric values."""
    return [{"method": s.method, "clip": s.segment.clip, "start": s.segment.start, "end": s.segment.end,
             "seed": "" if s.seed is None else s.seed, **s.values} for s in result.samples]


def shift_summary(shift: dict[int, float]) -> dict[str, float]:
    """Aligned score, and the mean score of pairs shifted by >= MIN_SHIFT frames."""
    return {"aligned": shift.get(0, float("nan")), "shifted_2_or_more": misaligned_score(shift)}


def markdown(result: "Evaluation") -> str:
    """The summary table with metric descriptions, as Markdown."""
    methods = list(result.table)
    lines = ["# Motion generators on held-out time", "",
             f"{result.settings.get('segments')} held-out range(s) of {result.settings.get('clips')} clip(s), "
             f"{result.settings.get('held_out_frames')} frames; {result.settings.get('seeds')} seed(s) per generator. "
             "No metric uses a training frame except the FD reference in the ground-truth row.", "",
             "| metric | unit | better | " + " | ".join(methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for m in METRICS:
        cells = [_fmt(result.table[name].get(m.key, float("nan"))) for name in methods]
        lines.append(f"| {m.label} | {m.unit} | {m.goal} | " + " | ".join(cells) + " |")
    summary = shift_summary(result.capp_shift)
    lines += ["", "## CAPP shift check (held-out ground truth)", "",
              f"Aligned: {_fmt(summary['aligned'])}; shifted by 2 or more frames (mean): "
              f"{_fmt(summary['shifted_2_or_more'])}. Model: `{result.capp_checkpoint}`.", "",
              "| shift (frames) | " + " | ".join(str(k) for k in result.capp_shift) + " |",
              "|---|" + "---|" * len(result.capp_shift),
              "| CAPP | " + " | ".join(_fmt(v) for v in result.capp_shift.values()) + " |",
              "", "## Metrics", ""]
    lines += [f"- **{m.label}** ({m.key}): {m.meaning}." for m in METRICS]
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> Path:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_report(result: "Evaluation", out_dir: Path) -> list[Path]:
    """Write metrics.md, metrics.csv, segments.csv and results.json; their paths."""
    keys = [m.key for m in METRICS]
    summary_rows = [{"method": name, **row} for name, row in result.table.items()]
    seg_rows = segment_rows(result)
    seg_columns = ["method", "clip", "start", "end", "seed"] + sorted({k for r in seg_rows for k in r} -
                                                                        {"method", "clip", "start", "end", "seed"})
    results = {"format": FORMAT, "version": VERSION, "settings": result.settings,
               "metrics": {m.key: {"label": m.label, "unit": m.unit, "better": m.goal, "meaning": m.meaning}
                           for m in METRICS},
               "table": result.table, "capp": {"checkpoint": result.capp_checkpoint,
                                               "shift_scores": result.capp_shift,
                                               **shift_summary(result.capp_shift)},
               "segments": seg_rows}
    return [
        _write_text(out_dir / METRICS_MD, markdown(result)),
        _write_text(out_dir / METRICS_CSV, _csv_text(summary_rows, ["method"] + keys + ["bilabial_count"])),
        _write_text(out_dir / SEGMENTS_CSV, _csv_text(seg_rows, seg_columns)),
        _write_text(out_dir / RESULTS_JSON, json.dumps(_clean(results), indent=1) + "\n"),
    ]
