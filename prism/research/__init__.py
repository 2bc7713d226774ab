"""The research loop: notebooks executed with papermill as MLflow runs (:mod:`.notebooks`),
notebook sweeps (:mod:`.sweeps`), MLflow tracking and provenance (:mod:`.tracking`), how a run
is judged in and out of sample (:mod:`.evaluation`), the data-quality gate of a notebook
(:mod:`.data_gate`), ML validation (:mod:`.ml_validation`), data exploration
(:mod:`.exploration`), run comparison (:mod:`.comparison`) and the notebooks' figures
(:mod:`.plots`).

May import: ``prism.core``, ``prism.db``, ``prism.data``, ``prism.features``,
``prism.strategies``, ``prism.backtest``.
"""
