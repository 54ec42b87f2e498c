"""Thumbnails: `image_thumbnails` (definitions.py); one PNG (render.py); a day's set and contact sheet (day.py)."""
