"""Where a mark comes from, and which marks are a sample of their class.

A ✓ says a photo is of the class; *which* photos get a ✓ depends on how the person came to
them. An example they gave (``learn NAME photo…``, a filed photo) or a photo finder drew at
random for a strip is a sample of the class: held out, it ranks anywhere in the class, so the
ranks of such photos say how large the class is (:func:`finder.learn.train.train_head`'s
``sample``). A ✓ on a photo finder showed because it ranked high (the grid, ``find`` output,
photos added to a class from it) or chose near its cut (a strip's chosen photos) is not: held
out, it ranks near the top or near the cut, and counted with the examples it shrank the class (issue
23: 10 ✓ from the top of tf_flowers' ranking took its mean F1 from 0.64 to 0.51). Those still
train the head; they do not size it.

numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EXAMPLE = "example"
"""An example (or counter-example) the person gave: ``learn NAME photo…``, a filed photo."""
TOP = "top"
"""A mark on a photo finder showed ranked (the grid, ``find`` output, marks added to a class)."""
STRIP = "strip"
"""A mark on a strip's chosen photo (near the cut, unlike the others)."""
RANDOM = "random"
"""A mark on a strip's photo drawn at random."""
ORIGINS: tuple[str, ...] = (EXAMPLE, TOP, STRIP, RANDOM)
SAMPLE: frozenset[str] = frozenset({EXAMPLE, RANDOM})
"""The origins whose ✓ are a sample of the class (their held-out ranks size it)."""


def sample_mask(origins: Sequence[str | None]) -> np.ndarray | None:
    """For positives of these origins, which are a sample of the class; None when any origin
    is not known (a mark from before origins were kept, an import): then none is told apart."""
    if any(o is None for o in origins):
        return None
    return np.asarray([o in SAMPLE for o in origins], dtype=bool)


def strips_of(origins: Sequence[str | None], positives: Sequence[str | None]) -> bool | None:
    """Whether a class's marks (of these ``origins``; ``positives``: its ✓'s) came from a strip:
    True when any did; False when none did and some ✓ was given on a photo finder showed
    ranked (``TOP``: its marks all say something of the top of the ranking only); else None."""
    if any(o in (STRIP, RANDOM) for o in origins):
        return True
    return False if any(o == TOP for o in positives) else None
