"""Measurement listing with its cursor, single measurement, metadata, raw
bodies from the spool and the archive, feedback and torsf."""
