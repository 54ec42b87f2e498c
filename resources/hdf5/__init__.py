"""Correlator subband files (UVH5): their headers, synthetic ones, and observation groups.

Plain code, no Dagster: `headers` reads what a file says about itself with h5py (never the
visibilities) into the plain `records`, `grouping` clusters files into observations, `registration` ties both to the
`hdf5` database through `resources.repositories.hdf5`, and `synthetic` writes small valid
files with pyuvdata for tests, benchmarks and sample data.
"""
