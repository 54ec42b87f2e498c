"""The daily image products, one package per domain (docs/architecture.md).

Each domain package holds its Dagster definitions in `definitions.py` and its plain logic beside
it, in modules named after what they compute. `partitions.py` and `runtime.py` hold what every
daily asset shares.
"""
