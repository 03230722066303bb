"""Benchmarks of napari-cellist's models on real annotated images.

Each module runs as ``python -m benchmarks.<module>`` from the repository root and writes its
JSON under ``benchmarks/results/``; ``docs/benchmarks.md`` reports the numbers and the commands.
One-off diagnoses live in ``benchmarks.diagnostics``. The data folder comes from
:func:`benchmarks._data.data_root` (``CELLIST_DATA``, default ``../shared/data``).
"""
