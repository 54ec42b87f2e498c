"""Dagster jobs (ops wiring plain functions from resources/)."""
