"""Features: technical indicators with TA-Lib's conventions (:mod:`.indicators`), point-in-time
features for ML strategies (:mod:`.point_in_time`) and the Parquet feature store with its
catalog (:mod:`.store`).

May import: ``prism.core``, ``prism.db``, ``prism.data``.
"""
