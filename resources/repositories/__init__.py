"""Repository layer: the queries of each logical database, as plain functions over SQLAlchemy.

Assets, sensors and the CLI call these instead of writing their own SQL.
"""
