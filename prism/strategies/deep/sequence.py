"""Sequence models (PyTorch, CPU): an LSTM and a small Transformer encoder read a window of
point-in-time features and predict the probability that the next bar rises; above
``threshold`` the strategy is long (short below ``1 - threshold``, if allowed).

They are trained walk-forward (:mod:`prism.strategies.deep.walk_forward`) with full-batch Adam
on binary cross-entropy, seeded and with deterministic algorithms, so the same data and
parameters give the same weights. PyTorch is imported only when a model is fitted or loaded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from prism.core.errors import ConfigError
from prism.core.lazy import lazy_module
from prism.strategies.deep.walk_forward import WalkForward, torch_deterministic
from prism.strategies.ml import FEATURES

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy")


def build_network(kind: str, window: int, hidden: int) -> Any:
    """Return an untrained network of ``kind`` (``lstm`` or ``transformer``) mapping a batch of
    (window × features) inputs to one logit each."""
    import torch
    from torch import nn

    features = len(FEATURES)

    class Lstm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(features, hidden, batch_first=True)
            self.head = nn.Linear(hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            return self.head(out[:, -1, :]).squeeze(-1)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(features, hidden)
            self.position = nn.Parameter(torch.zeros(window, hidden))
            layer = nn.TransformerEncoderLayer(
                hidden, nhead=2, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
            self.head = nn.Linear(hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            encoded = self.encoder(self.embed(x) + self.position)
            return self.head(encoded[:, -1, :]).squeeze(-1)

    if kind == "lstm":
        return Lstm()
    if kind == "transformer":
        return Encoder()
    raise ConfigError(f"unknown network {kind!r}; use 'lstm' or 'transformer'")


@dataclass(frozen=True)
class SequenceModel(WalkForward):
    """A walk-forward classifier of the next bar's direction over a ``window`` of features,
    trading when the rise probability passes ``threshold``; subclasses set :attr:`network`."""

    network: ClassVar[str]
    window: int = 20
    train_bars: int = 500
    period: str = "quarter"
    hidden: int = 16
    epochs: int = 30
    learning_rate: float = 0.01
    threshold: float = 0.52
    seed: int = 7
    allow_short: bool = False

    def __post_init__(self) -> None:
        if self.hidden < 2 or self.hidden % 2 or self.epochs < 1 or self.learning_rate <= 0:
            raise ConfigError(
                f"{self.name} needs an even hidden >= 2, epochs >= 1 and learning_rate > 0, got "
                f"hidden={self.hidden}, epochs={self.epochs}, learning_rate={self.learning_rate}"
            )
        if not 0.5 <= self.threshold < 1:
            raise ConfigError(f"{self.name} needs 0.5 <= threshold < 1, got {self.threshold}")
        self.check()

    def fit(self, x: np.ndarray, y: np.ndarray, market: np.ndarray) -> tuple[bytes, list[float]]:
        """Return the trained network's state and its loss per epoch."""
        import torch

        torch_deterministic(self.seed)
        net = build_network(self.network, self.window, self.hidden)
        optimiser = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        inputs, targets = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
        curve = []
        net.train()
        for _ in range(self.epochs):
            optimiser.zero_grad()
            loss = loss_fn(net(inputs), targets)
            loss.backward()
            optimiser.step()
            curve.append(float(loss.detach()))
        buffer = io.BytesIO()
        torch.save(net.state_dict(), buffer)
        return buffer.getvalue(), curve

    def load(self, state: bytes) -> Any:
        """Return the network with the stored weights, in evaluation mode."""
        import torch

        net = build_network(self.network, self.window, self.hidden)
        net.load_state_dict(torch.load(io.BytesIO(state), weights_only=True))
        return net.eval()

    def score(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Return +1/0/-1 per window from the network's rise probability."""
        import torch

        with torch.no_grad():
            probability = torch.sigmoid(model(torch.from_numpy(x))).numpy().astype(np.float64)
        return np.where(
            probability > self.threshold, 1.0, np.where(probability < 1 - self.threshold, -1.0, 0.0)
        )


@dataclass(frozen=True)
class LstmDirection(SequenceModel):
    """Long a symbol while an LSTM over a window of features gives the next bar a rise
    probability above ``threshold``; refitted walk-forward each period (PyTorch)."""

    name: ClassVar[str] = "lstm_direction"
    network: ClassVar[str] = "lstm"


@dataclass(frozen=True)
class TransformerDirection(SequenceModel):
    """Long a symbol while a one-layer Transformer encoder over a window of features gives the
    next bar a rise probability above ``threshold``; refitted walk-forward each period
    (PyTorch)."""

    name: ClassVar[str] = "transformer_direction"
    network: ClassVar[str] = "transformer"
