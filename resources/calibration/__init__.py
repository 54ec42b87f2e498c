"""Calibration tables (CASA tables): read their metadata, write synthetic ones, scan directories.

Plain Python over python-casacore and a SQLAlchemy bind; no Dagster. What is registered and
the rules of the registry: docs/calibration.md.
"""
