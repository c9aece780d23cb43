"""Evaluation of motion generators on held-out real video (``avatar evaluate``).

- :mod:`avatar.eval.evaluate`: clips -> held-out segments -> every generator -> metrics;
- :mod:`avatar.eval.report`: Markdown / CSV / JSON tables;
- :mod:`avatar.eval.plots`: PNG plots.
"""

from avatar.eval.evaluate import GROUND_TRUTH, Evaluation, evaluate

__all__ = ["Evaluation", "GROUND_TRUTH", "evaluate"]
