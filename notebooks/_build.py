"""Write notebooks/backtest.ipynb from the cells below (run: python notebooks/_build.py)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    new_markdown_cell(
        "# SMA crossover backtest\n\n"
        "Reads daily bars from Prism's database, backtests a simple-moving-average crossover "
        "(decided at a bar's close, filled at the next bar's open, with commission and "
        "slippage) and logs the run to MLflow: parameters, metrics, the equity curve, the hash "
        "of the bars, and the strategy as a pyfunc model the live runner can trade.\n\n"
        "Run it from the command line with `prism research run notebooks/backtest.ipynb "
        "-p fast 10 -p slow 50`, or here in JupyterLab (`make lab`). Another registered "
        "strategy takes its parameters as a dict: `-p strategy time_series_momentum "
        "-p strategy_params \"{'lookback': 126}\"` (`fast` and `slow` are then ignored)."
    ),
    new_code_cell(
        'strategy = "sma_crossover"\n'
        'symbols = ["SPX", "NDX"]\n'
        'start = "1999-01-01"\n'
        'end = "2018-12-31"\n'
        "fast = 10\n"
        "slow = 50\n"
        "strategy_params = {}\n"
        "commission_bps = 1.0\n"
        "slippage_bps = 2.0\n"
        "capital = 1_000_000.0\n"
        "mlflow_run_id = None",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "from prism import tracking\n"
        "from prism.backtest import BacktestConfig, run_backtest\n"
        "from prism.config import load_settings\n"
        "from prism.data.store import read_bars\n"
        "from prism.db.engine import open_database\n"
        "from prism.metrics import summary\n"
        "from prism.plots import equity_figure\n"
        "from prism.strategies import make_strategy\n\n"
        "chosen = make_strategy(strategy, strategy_params or {'fast': fast, 'slow': slow})\n"
        "settings = load_settings()\n"
        "engine = open_database(settings)\n"
        "bars = read_bars(engine, symbols, start=start, end=end)\n"
        "bars.groupby('symbol')['time'].agg(['min', 'max', 'count'])"
    ),
    new_code_cell(
        "config = BacktestConfig(capital=capital, commission_bps=commission_bps, "
        "slippage_bps=slippage_bps)\n"
        "result = run_backtest(bars, chosen, config)\n"
        "summary(result.equity, len(result.trades))"
    ),
    new_code_cell(
        "figure = equity_figure(result.equity, f'{strategy} {fast}/{slow} on {symbols}')"
    ),
    new_code_cell("result.trades.tail(10)"),
    new_code_cell(
        "with tracking.research_run(settings, mlflow_run_id) as run_id:\n"
        "    logged = tracking.log_backtest(chosen, bars, result, symbols)\n"
        "sharpe, drawdown, trades = (logged[k] for k in ('sharpe', 'max_drawdown', 'n_trades'))\n"
        "print(f'MLflow run {run_id}: sharpe {sharpe:.2f}, max drawdown {drawdown:.1%}, '\n"
        "      f'trades {trades:.0f}')"
    ),
]


def main() -> None:
    """Write the notebook next to this file."""
    notebook = new_notebook(cells=CELLS)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.write(notebook, Path(__file__).with_name("backtest.ipynb"))


if __name__ == "__main__":
    main()
