"""Everything that reads the hdf5 database: raw correlator subband files and their groups.

No asset, sensor or CLI command queries this database yet (the conversion stage that fills it
is not part of this code location); the module exists so that the first query has its obvious
home next to the other four logical databases, not in whichever caller needs it first. The
schema and the file-name rules stay in `resources.models.hdf5`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Connection

from resources.models.hdf5 import Hdf5File

HDF5_FILES = Hdf5File.__table__


def files_of_group(conn: Connection, group_id: str) -> list[str]:
    """Paths of one observation group's subband files, in subband order.

    A group is complete when it has `resources.models.hdf5.N_SUBBANDS` files; callers compare
    the length rather than this module guessing what an incomplete group should mean.
    """
    stmt = (
        select(HDF5_FILES.c.path)
        .where(HDF5_FILES.c.group_id == group_id)
        .order_by(HDF5_FILES.c.subband, HDF5_FILES.c.path)
    )
    return list(conn.execute(stmt).scalars())
