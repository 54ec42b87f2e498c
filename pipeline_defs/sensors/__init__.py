"""Dagster sensors: database health (`health.py`) and failed runs (`run_failures.py`)."""
