"""Reinforcement-learning agents as strategies: a Gymnasium environment over the backtester's
own rebalancing, fill and cost rules (:mod:`.environment`) and PPO and DQN agents
(stable-baselines3) trained walk-forward on it (:mod:`.rl`).

A package of its own because an agent's training needs :mod:`prism.backtest`'s rules, which
:mod:`prism.strategies` may not import; the agents register under the ``prism.strategies``
entry-point group (pyproject.toml), so every strategy command finds them by name.
"""
