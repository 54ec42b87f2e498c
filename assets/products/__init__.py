"""The image products of a day (catalogue, QA, thumbnails) made by one op in one pass."""
