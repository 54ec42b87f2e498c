"""Statistics: `pipeline_stats` (definitions.py) over a day's summary and plot (daily.py)."""
