"""Correlator subband files grouped into observations: `subband_groups` (docs/upstream.md)."""
