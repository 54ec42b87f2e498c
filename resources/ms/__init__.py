"""CASA measurement sets: their summary, how to find them, and small real ones for tests.

Plain code, no Dagster: `reader` reads what a measurement set says about itself with
python-casacore (headers and the TIME column, never a visibility) and finds the `*.ms`
directories under the watched ones; `synthetic` writes small valid sets with pyuvdata's
`UVData.write_ms` from the synthetic UVH5 subbands of `resources.hdf5.synthetic`, plus the
broken cases a reader must name.
"""
