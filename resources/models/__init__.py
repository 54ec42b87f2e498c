"""SQLAlchemy models of the five logical databases, one `MetaData` each (docs/schemas.md).

`METADATA[name]` is what Alembic's env.py and `contimg db check` compare each database against.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from resources.models import cal_registry, data_registry, hdf5, ingest, products

METADATA: dict[str, MetaData] = {
    "products": products.METADATA,
    "cal_registry": cal_registry.METADATA,
    "hdf5": hdf5.METADATA,
    "ingest": ingest.METADATA,
    "data_registry": data_registry.METADATA,
}

__all__ = ["METADATA", "cal_registry", "data_registry", "hdf5", "ingest", "products"]
