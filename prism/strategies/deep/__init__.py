"""Deep-learning strategies: walk-forward sequence models (:mod:`.sequence`) and the shared
training machinery (:mod:`.walk_forward`). PyTorch is the optional ``deep`` extra: importing
this package does not import it, and without it the strategies are listed as unavailable.
"""

from __future__ import annotations

from prism.strategies.deep.sequence import LstmDirection, TransformerDirection
from prism.strategies.deep.walk_forward import ENABLE_HINT, deep_available

__all__ = ["ENABLE_HINT", "LstmDirection", "TransformerDirection", "deep_available"]
