"""Walk-forward training shared by the deep strategies (sequence models and RL agents).

Each symbol's model is refitted at the first bar of every calendar ``period`` (quarter or year)
on the ``train_bars`` bars before it, and predicts the bars up to the next refit. Inputs are
windows of ``window`` bars of point-in-time features (:data:`prism.strategies.ml.FEATURES`),
normalised with the mean and standard deviation of the training bars only, so a prediction never
depends on a later bar. Refit dates come from the calendar, so a window of ``warmup + 1`` bars
(what the live runner reads) reproduces the whole history's decisions.

A fitted model is kept in the strategy's :class:`TrainedStore` under a key that hashes the
strategy's parameters and the normalised training inputs and labels as the model sees them
(float32, so the last-bit drift of a rolling feature computed from a shorter history does not
count as different data): the same data trains once,
a logged model carries its store (the MLflow pyfunc model), and loading it does not retrain; a
history that differs in any training bar (or in its normalisation) misses the store and trains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from prism.core.errors import ConfigError
from prism.core.lazy import lazy_module
from prism.strategies.base import equal_split
from prism.strategies.ml import FEATURE_LOOKBACK, FEATURES

PERIOD_BARS = {"quarter": 66, "year": 260}
"""Most bars a calendar period holds (daily bars), for the warm-up."""
DEEP_PACKAGES = ("torch", "stable_baselines3", "gymnasium")
ENABLE_HINT = (
    "install the deep extra: `make install-deep` (pip install torch==2.13.0 and "
    "pip install -e '.[deep]')"
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")


def deep_available() -> bool:
    """Return whether PyTorch, stable-baselines3 and Gymnasium are installed (the ``deep``
    extra), without importing them."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in DEEP_PACKAGES)
    except (ImportError, ValueError):
        return False


def require_deep(name: str) -> None:
    """Raise a ConfigError naming how to enable ``name`` when the deep extra is missing."""
    if not deep_available():
        raise ConfigError(f"strategy {name!r} needs PyTorch and stable-baselines3: {ENABLE_HINT}")


def refit_starts(times: pd.DatetimeIndex, period: str) -> np.ndarray:
    """Return the indices of the first bar of each calendar ``period`` after the first bar."""
    key = times.year * 4 + (times.month - 1) // 3 if period == "quarter" else times.year
    return np.flatnonzero(np.r_[False, key[1:] != key[:-1]])


def sliding(x: np.ndarray, window: int) -> np.ndarray:
    """Return windows (n - window + 1, window, features); row ``i`` ends at bar
    ``i + window - 1``."""
    return np.lib.stride_tricks.sliding_window_view(x, window, axis=0).transpose(0, 2, 1)


@dataclass
class Fit:
    """One fitted model: its serialized state, the training normalisation, and its learning
    curve (loss per epoch, or mean episode reward per rollout)."""

    state: bytes
    mean: np.ndarray
    std: np.ndarray
    curve: list[float]
    symbol: str
    refit: str


@dataclass
class TrainedStore:
    """Fitted models by key (see the module docstring), and how many were trained here."""

    fits: dict[str, Fit] = field(default_factory=dict)
    trained: int = 0
    loaded: dict[str, Any] = field(default_factory=dict, repr=False)


class WalkForward:
    """Mixin for a frozen dataclass strategy with fields ``window``, ``train_bars``, ``period``,
    ``seed`` and ``allow_short``: subclasses define :meth:`fit` (train on normalised windows
    and next-bar labels), :meth:`load` and :meth:`score` (a +1/0/-1 signal per window)."""

    name: ClassVar[str]
    extra: ClassVar[str] = "deep"
    window: int
    train_bars: int
    period: str
    seed: int
    allow_short: bool

    def check(self) -> None:
        """Validate the shared parameters and that the deep extra is installed."""
        if self.period not in PERIOD_BARS:
            raise ConfigError(
                f"{self.name}: period must be 'quarter' or 'year', got {self.period!r}"
            )
        if self.window < 2 or self.train_bars < self.window + 20:
            raise ConfigError(
                f"{self.name} needs window >= 2 and train_bars >= window + 20, got "
                f"window={self.window}, train_bars={self.train_bars}"
            )
        require_deep(self.name)
        object.__setattr__(self, "_store", TrainedStore())

    @property
    def store(self) -> TrainedStore:
        """Return the fitted models this strategy holds."""
        return getattr(self, "_store")  # noqa: B009

    @property
    def warmup(self) -> int:
        """Return the bars one decision needs: a period, the training set, its windows and
        their features."""
        return PERIOD_BARS[self.period] + self.train_bars + self.window + FEATURE_LOOKBACK

    def fit(self, x: np.ndarray, y: np.ndarray, market: np.ndarray) -> tuple[bytes, list[float]]:
        """Return a serialized model trained on windows ``x`` and labels ``y`` (1 = rise), and
        its learning curve. ``market`` holds, per window, the close it ends at, the next bar's
        open and the next bar's close (what an agent's trades fill and are marked at)."""
        raise NotImplementedError

    def score(self, model: Any, x: np.ndarray) -> np.ndarray:
        """Return the signal (+1/0/-1) per window of ``x`` from a loaded model."""
        raise NotImplementedError

    def load(self, state: bytes) -> Any:
        """Return a model rebuilt from its serialized state."""
        raise NotImplementedError

    def normaliser(self, x: np.ndarray, lo: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the mean and standard deviation of features ``x`` over the training rows
        ``lo:start`` (never a row at or after the refit bar ``start``)."""
        rows = x[lo:start]
        rows = rows[~np.isnan(rows).any(axis=1)]
        std = rows.std(axis=0)
        return rows.mean(axis=0), np.where(std > 0, std, 1.0)

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return (time, symbol, weight) from per-symbol models refitted each period."""
        from prism.features.point_in_time import compute

        ordered = bars.sort_values(["symbol", "time"], kind="stable").reset_index(drop=True)
        benchmark = str(ordered["symbol"].iloc[0]) if len(ordered) else ""
        table = compute(ordered, benchmark).reset_index(drop=True)
        signal = np.zeros(len(ordered))
        for symbol, rows in ordered.groupby("symbol", sort=False):
            signal[rows.index] = self._signals(str(symbol), rows, table.loc[rows.index])
        return equal_split(ordered, signal, self.allow_short)

    def _key(self, *arrays: np.ndarray) -> str:
        digest = hashlib.sha256(type(self).__qualname__.encode())
        digest.update(repr(dataclasses.asdict(self)).encode())  # type: ignore[call-overload]
        for array in arrays:
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def _signals(self, symbol: str, rows: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
        close = rows["close"].to_numpy(np.float64)
        opens = rows["open"].to_numpy(np.float64)
        label = np.r_[(close[1:] > close[:-1]).astype(float), np.nan]
        x = table[list(FEATURES)].to_numpy(np.float64)
        times = pd.DatetimeIndex(rows["time"])
        refits = refit_starts(times, self.period)
        out = np.zeros(len(rows))
        w = self.window
        for k, start in enumerate(refits):
            stop = refits[k + 1] if k + 1 < len(refits) else len(rows)
            first = start - self.train_bars
            if first - w + 1 < FEATURE_LOOKBACK:
                continue
            lo = first - w + 1
            mean, std = self.normaliser(x, lo, start)
            scaled = (x - mean) / std
            train = sliding(scaled[lo:start], w)
            train_y = label[first:start]
            usable = ~np.isnan(train).any(axis=(1, 2)) & ~np.isnan(train_y)
            if len(np.unique(train_y[usable])) < 2:
                continue
            bar = np.arange(first, start)[usable]
            market = np.column_stack([close[bar], opens[bar + 1], close[bar + 1]])
            key = self._key(train[usable], train_y[usable], market)
            store = self.store
            if key not in store.fits:
                state, curve = self.fit(train[usable].astype(np.float32), train_y[usable], market)
                store.fits[key] = Fit(state, mean, std, curve, symbol, str(times[start]))
                store.trained += 1
            if key not in store.loaded:
                store.loaded[key] = self.load(store.fits[key].state)
            block = sliding(scaled[start - w + 1 : stop], w)
            ready = ~np.isnan(block).any(axis=(1, 2))
            if ready.any():
                out[start:stop][ready] = self.score(
                    store.loaded[key], block[ready].astype(np.float32)
                )
        return out

    def fits(self) -> dict[str, Fit]:
        """Return the fitted models (what a logged model carries)."""
        return dict(self.store.fits)

    def with_fits(self, fits: dict[str, Fit]) -> WalkForward:
        """Adopt fitted models (a logged model's), so matching training data is not retrained."""
        self.store.fits.update(fits)
        return self

    def learning_curves(self) -> pd.DataFrame:
        """Return each fit's learning curve: symbol, refit, step, value."""
        rows = [
            {"symbol": f.symbol, "refit": f.refit, "step": i, "value": v}
            for f in self.store.fits.values()
            for i, v in enumerate(f.curve)
        ]
        return pd.DataFrame(rows, columns=["symbol", "refit", "step", "value"])


def torch_deterministic(seed: int) -> None:
    """Seed PyTorch and make it use deterministic algorithms on one thread, so the same data
    and parameters give the same weights."""
    import torch

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
