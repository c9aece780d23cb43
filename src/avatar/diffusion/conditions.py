"""``Cond``: the named conditions of a batch, each with a per-sample presence flag.

A condition group (``"audio"``, ``"gaze"``, ``"emotion"``, ``"prefix"`` ...) is a tensor
whose first axis is the batch. Next to every value, ``present[name]`` is a (B,) bool
tensor. The *null convention*: a network must treat an absent condition (flag False, or
the name missing from the Cond altogether) by substituting its own learned null
embedding, and must never read the value of an absent sample. Dropping a condition
therefore never changes shapes: values stay, flags flip. This is what lets one wrapper
do classifier-free guidance per condition group and lets training drop conditions per
sample (:func:`avatar.diffusion.guidance.dropout_conditions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch
from torch import Tensor


@dataclass(frozen=True)
class Cond:
    """Named condition tensors ``values[name]`` (B, ...) and flags ``present[name]`` (B,)."""

    values: Mapping[str, Tensor]
    present: Mapping[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {name: v.shape[0] for name, v in self.values.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"condition batch sizes differ: {sizes}")
        unknown = set(self.present) - set(self.values)
        if unknown:
            raise ValueError(f"presence flags for unknown conditions: {sorted(unknown)}")
        # Fill missing flags with "present"; object.__setattr__ because the class is frozen.
        flags = {name: torch.ones(v.shape[0], dtype=torch.bool, device=v.device)
                 for name, v in self.values.items()}
        for name, p in self.present.items():
            flags[name] = p.to(dtype=torch.bool, device=self.values[name].device)
            if flags[name].shape != (sizes[name],):
                raise ValueError(f"present[{name!r}] must have shape ({sizes[name]},)")
        object.__setattr__(self, "values", dict(self.values))
        object.__setattr__(self, "present", flags)

    @classmethod
    def of(cls, **values: Tensor) -> "Cond":
        """All conditions present: ``Cond.of(audio=a, gaze=g)``."""
        return cls(values)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def __getitem__(self, name: str) -> Tensor:
        return self.values[name]

    def keys(self) -> Iterable[str]:
        return self.values.keys()

    @property
    def batch_size(self) -> int | None:
        return next((v.shape[0] for v in self.values.values()), None)

    def drop(self, *names: str) -> "Cond":
        """A copy with the named conditions absent for every sample (for guidance)."""
        missing = [n for n in names if n not in self.values]
        if missing:
            raise KeyError(f"cannot drop unknown conditions {missing}; known: {sorted(self.values)}")
        flags = dict(self.present)
        for n in names:
            flags[n] = torch.zeros_like(flags[n])
        return Cond(self.values, flags)

    def keep_only(self, *names: str) -> "Cond":
        """A copy with every condition except ``names`` dropped."""
        return self.drop(*[n for n in self.values if n not in names])

    def with_present(self, name: str, flags: Tensor) -> "Cond":
        """A copy with ``present[name]`` replaced by the (B,) bool ``flags``."""
        return Cond(self.values, {**self.present, name: flags})

    @classmethod
    def cat(cls, conds: "Iterable[Cond]") -> "Cond":
        """Stack batches with the same condition names along the batch axis."""
        conds = list(conds)
        names = list(conds[0].values)
        return cls({n: torch.cat([c.values[n] for c in conds]) for n in names},
                   {n: torch.cat([c.present[n] for c in conds]) for n in names})

    def select(self, index) -> "Cond":
        """The samples ``index`` (an int list, slice or bool mask) of every condition."""
        return Cond({n: v[index] for n, v in self.values.items()},
                    {n: p[index] for n, p in self.present.items()})
