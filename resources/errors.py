"""The project's exception hierarchy.

Every error a person may meet carries the offending name (database, path, revision, setting) and
a sentence saying what to do. Handlers catch the narrowest class that can really occur; see
docs/exceptions.md for the rule on broad handlers.
"""

from __future__ import annotations

from pathlib import Path


def _sentence(text: str) -> str:
    """End the message with a full stop before a hint follows, so the two read as sentences."""
    return text if text.rstrip().endswith((".", "!", "?", ":")) else f"{text.rstrip()}."


class ContimgError(Exception):
    """Root of every error raised on purpose by contimg."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{_sentence(message)} {hint}" if hint else message)


# --- configuration --------------------------------------------------------------------------


class ConfigurationError(ContimgError):
    """A setting is missing or malformed; names the setting."""

    def __init__(self, setting: str, message: str, *, hint: str | None = None) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}", hint=hint)


# --- databases --------------------------------------------------------------------------------


class DatabaseError(ContimgError):
    """Something went wrong talking to one logical database."""

    def __init__(self, database: str, message: str, *, hint: str | None = None) -> None:
        self.database = database
        super().__init__(f"database {database!r}: {message}", hint=hint)


class DatabaseConnectionError(DatabaseError):
    """The database could not be reached; the URL in the message has its password masked."""

    #: What happened, with `{url}` for the masked URL (subclasses say it differently).
    what = "cannot connect to {url}"
    default_hint = "Check that the server is up and the URL, user and password are right."

    def __init__(
        self, database: str, masked_url: str, reason: str, *, hint: str | None = None
    ) -> None:
        self.masked_url = masked_url
        self.reason = reason
        super().__init__(
            database,
            f"{self.what.format(url=masked_url)}: {reason}",
            hint=hint or self.default_hint,
        )


class DatabaseConnectionLostError(DatabaseConnectionError):
    """An established connection broke mid-query: the server restarted, or an administrator
    (or a failover) terminated the backend. Not "cannot connect": the URL and server were fine.

    A subclass of DatabaseConnectionError so that code retrying or releasing work on a
    connection failure treats both alike.
    """

    what = "lost the connection to {url} mid-query"
    default_hint = (
        "The connection was lost mid-query (server restarted or backend terminated?); re-run, "
        "the work is idempotent."
    )


class DatabaseFullError(DatabaseError):
    """A write failed because the disk (or quota) holding the database is full."""

    def __init__(self, database: str, location: str, reason: str) -> None:
        self.location = location
        self.reason = reason
        super().__init__(
            database,
            f"{location} is full: {reason}",
            hint=f"Free space on the file system holding {location} (or raise its quota), then "
            "re-run; the failed transaction was rolled back.",
        )


class DatabaseUnwritableError(DatabaseError):
    """A SQLite file cannot be opened or written because its directory (or the file) is not
    writable: a read-only mount, a permission. Names the directory and the variable to change."""

    def __init__(self, database: str, path: str, directory: str, reason: str) -> None:
        self.path = path
        self.directory = directory
        self.reason = reason
        variable = f"CONTIMG_DB_{database.upper()}_URL"
        super().__init__(
            database,
            f"the SQLite file {path} cannot be written: {directory} is not writable ({reason})",
            hint=f"Make {directory} writable, or point {variable} (or CONTIMG_DATA_DIR) at a "
            "writable directory.",
        )


class DatabaseDamagedError(DatabaseError):
    """A SQLite file is damaged: not a database any more (overwritten), malformed, or emptied
    after it had been migrated. Names the file and how to restore the newest backup."""

    def __init__(
        self,
        database: str,
        path: str,
        reason: str,
        *,
        backups: tuple[str, ...] = (),
        emptied: bool = False,
    ) -> None:
        self.path = path
        self.reason = reason
        self.backups = backups
        self.emptied = emptied
        if backups:
            hint = (
                f"Stop what writes to it, then restore the newest backup `contimg db upgrade` "
                f"took: `contimg db restore --db {database} --from {backups[-1]} --yes` (all "
                f"backups: {path}.bak-*; docs/ops/database-migrations.md, Back up and restore)."
            )
        else:
            fresh = (
                f"run `contimg db upgrade --db {database} --recreate`"
                if emptied
                else f"move it aside and run `contimg db upgrade --db {database}`"
            )
            hint = (
                f"No backup {path}.bak-* exists: restore the file from your own backup, or "
                f"{fresh} for an empty database (docs/ops/database-migrations.md)."
            )
        super().__init__(database, f"the SQLite file {path} is damaged: {reason}", hint=hint)


class PoolExhaustedError(DatabaseError):
    """No pooled connection freed up within pool_timeout."""

    def __init__(self, database: str, timeout_s: float, pool_status: str) -> None:
        self.timeout_s = timeout_s
        self.pool_status = pool_status
        super().__init__(
            database,
            f"connection pool exhausted: no connection freed up within {timeout_s:g} s "
            f"({pool_status})",
            hint="Lower the number of concurrent steps (Dagster concurrency pool 'database') or "
            "raise pool_size/max_overflow within the server's max_connections.",
        )


class IngestStateError(DatabaseError):
    """An ingest-queue row was asked to make a transition the state machine forbids."""

    def __init__(self, path: str, current: str, target: str) -> None:
        self.path = path
        self.current = current
        self.target = target
        super().__init__(
            "ingest",
            f"illegal ingest transition {current!r} -> {target!r} for {path}",
            hint="Only pending->in_progress->completed/failed, failed->pending and "
            "stale in_progress->pending are allowed.",
        )


# --- migrations -------------------------------------------------------------------------------


class MigrationError(ContimgError):
    """A schema migration failed or was refused; names the database and revision."""

    def __init__(
        self, database: str, message: str, *, revision: str | None = None, hint: str | None = None
    ) -> None:
        self.database = database
        self.revision = revision
        where = f" at revision {revision}" if revision else ""
        super().__init__(f"database {database!r}{where}: {message}", hint=hint)


class SchemaDriftError(MigrationError):
    """The models and the migrations disagree (autogenerate sees a difference)."""


UPGRADE_HINT = "Run `contimg db upgrade` (or the `migrate_databases` job)."


class DatabaseNotMigratedError(MigrationError):
    """A database is used before its schema is at the migrations' head.

    Raised once, where a connection is first handed out (`Databases.engine`), so that a run or a
    command says which database to upgrade instead of failing later on `no such table`. Also
    raised, without touching the disk, for a SQLite file that does not exist yet: opening it
    would create an empty file and the same `no such table` would follow.
    """

    def __init__(
        self,
        database: str,
        location: str,
        *,
        current: str | None = None,
        head: str | None = None,
        missing_file: bool = False,
    ) -> None:
        self.location = location
        self.current = current
        self.head = head
        self.missing_file = missing_file
        if missing_file:
            message = f"not migrated: the SQLite file {location} does not exist"
        elif current is None:
            message = f"not migrated: {location} has no schema yet (head is {head or '?'})"
        else:
            message = f"not migrated: {location} is behind head {head or '?'}"
        super().__init__(database, message, revision=current, hint=UPGRADE_HINT)


# --- FITS parsing -----------------------------------------------------------------------------


class FITSParsingError(ContimgError):
    """A FITS file could not be turned into image metadata. One subclass per kind of failure."""

    default_hint: str = "Check the file; re-export it from the imager if it is damaged."

    def __init__(self, path: str | Path, message: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}", hint=hint or self.default_hint)


class NotFITSError(FITSParsingError):
    default_hint = "Check that this is really a FITS file (and not, say, a partial download)."


class TruncatedFITSError(FITSParsingError):
    default_hint = "The file is shorter than its header says; it may still be being written."


class BadHeaderError(FITSParsingError):
    default_hint = "A header card is malformed or a mandatory card is missing; fix the writer."


class UnsupportedLayoutError(FITSParsingError):
    default_hint = (
        "Supported: 2-D images, and cubes whose extra axes are length 1 or are FREQ/STOKES axes "
        "(the first plane is used); re-export other layouts as 2-D images."
    )


class NoImageError(FITSParsingError):
    default_hint = "The file holds tables or visibilities, not an image; do not ingest it here."


class DecompressionError(FITSParsingError):
    default_hint = "The compressed stream is corrupt; copy the file again from its source."


class MissingObservationDateError(FITSParsingError):
    default_hint = (
        "No DATE-OBS, MJD-OBS, DATE-BEG or DATE-AVG card; fix the header or enable the "
        "file-mtime fallback (CONTIMG_OBS_DATE_FALLBACK=mtime)."
    )


class FITSFileAccessError(FITSParsingError):
    default_hint = "The file could not be read; check that it exists and its permissions."


# --- HDF5 (correlator subband files) ---------------------------------------------------------


class HDF5ReadError(ContimgError):
    """A correlator subband file's header could not be read. One subclass per kind of failure,
    so a failed-files listing can say which (the class name is stored with the message)."""

    default_hint: str = "Check the file; copy it again from the correlator if it is damaged."

    def __init__(self, path: str | Path, message: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}", hint=hint or self.default_hint)


class NotHDF5Error(HDF5ReadError):
    default_hint = "There is no HDF5 signature; check that this is a correlator file at all."


class CorruptHDF5Error(HDF5ReadError):
    default_hint = (
        "The HDF5 structure is damaged or the file is truncated; it may still be being written, "
        "or the copy was cut short. Copy it again."
    )


class HDF5HeaderError(HDF5ReadError):
    default_hint = "A required UVH5 header dataset is missing or malformed; fix the writer."


class HDF5FileAccessError(HDF5ReadError):
    default_hint = "The file could not be opened; check that it exists and its permissions."


# --- measurement sets and calibration tables (CASA tables) ----------------------------------------


class CasaTableError(ContimgError):
    """A measurement set or calibration table (a directory of CASA tables) could not be read.

    One subclass per kind of failure, so a failed-files listing can say which (the class name is
    stored with the message). The message names the path and the reason, on one line.
    """

    default_hint: str = "Check the directory; write it again if it is damaged."

    def __init__(self, path: str | Path, message: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}", hint=hint or self.default_hint)


class NotCasaTableError(CasaTableError):
    default_hint = "A CASA table is a directory holding table.dat; check the path."


class CorruptCasaTableError(CasaTableError):
    default_hint = "casacore could not open it (truncated or damaged); write it again."


class MeasurementSetError(CasaTableError):
    default_hint = "A required subtable or column of the measurement set is missing or empty."


class CaltableError(CasaTableError):
    default_hint = "A calibration table needs a TIME column with at least one row."


class CalibrationConflictError(ContimgError):
    """Registering or applying calibration tables would break a rule of the registry (an
    overlap of two active sets of one type, a retired table applied); nothing was written."""


# --- file naming conventions -------------------------------------------------------------------


class FileNameError(ContimgError):
    """A file name does not follow the convention its kind requires (HDF5 subbands, caltables)."""

    def __init__(self, path: str | Path, message: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}", hint=hint)


# --- products ---------------------------------------------------------------------------------


class QAError(ContimgError):
    """QA could not grade an image (not: the image is bad; a bad image gets grade 'fail')."""

    def __init__(self, path: str | Path, message: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}", hint=hint)


class ThumbnailError(ContimgError):
    """A thumbnail could not be rendered for a reason other than bad pixels."""

    def __init__(self, path: str | Path, message: str, *, hint: str | None = None) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}", hint=hint)


class ObservationDateOutOfRangeError(FITSParsingError):
    default_hint = (
        "The observation date is before the first daily partition (CONTIMG_PARTITIONS_START); "
        "move the start earlier if the file is genuine."
    )


# --- catalogue queries ------------------------------------------------------------------------


class InvalidQueryError(ContimgError):
    """A catalogue query parameter is out of range or malformed (RA, Dec, radius, grade, ...).

    `parameter` names the filter as a user typed it (e.g. `ra_min`, `cone radius`), so the CLI
    can turn it into a usage error pointing at the option.
    """

    def __init__(self, parameter: str, message: str, *, hint: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {message}", hint=hint)
