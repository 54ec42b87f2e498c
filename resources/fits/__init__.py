"""FITS parsing: validation, metadata extraction and caching, free of Dagster."""
