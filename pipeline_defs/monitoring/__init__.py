"""Monitoring, above resources/ and migrations/: the database health monitor (health.py) and the Prometheus exporter (exporter.py)."""
