"""Catalogue: `fits_metadata` (definitions.py) over a day's ingest (ingest.py: claim, parse, upsert)."""
