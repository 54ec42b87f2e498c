#!/usr/bin/env bash
# Migrates fresh databases (SQLite, and PostgreSQL when reachable) and runs `contimg db check`,
# so that a model change without a migration fails the build. Called by `make test`.
set -euo pipefail
BIN=${1:-.venv/bin}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CONTIMG_DATA_DIR="$work/var"
"$BIN/contimg" db upgrade --no-backup >/dev/null
"$BIN/contimg" db check
echo "db check: fresh SQLite databases match the models"
if "$BIN/python" -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 1)' 2>/dev/null; then
  db="contimg_check_$$"
  psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $db" >/dev/null
  trap 'psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT
  for name in PRODUCTS CAL_REGISTRY HDF5 INGEST DATA_REGISTRY; do
    export "CONTIMG_DB_${name}_URL=postgresql+psycopg://postgres@127.0.0.1:5432/$db"
  done
  "$BIN/contimg" db upgrade >/dev/null
  "$BIN/contimg" db check
  echo "db check: fresh PostgreSQL database (all five in one) matches the models"
elif [ "${CONTIMG_REQUIRE_SERVICES:-0}" = "1" ]; then
  echo "PostgreSQL is not reachable on 127.0.0.1:5432 and CONTIMG_REQUIRE_SERVICES=1" >&2
  exit 1
else
  echo "db check on PostgreSQL skipped: nothing listens on 127.0.0.1:5432"
fi
