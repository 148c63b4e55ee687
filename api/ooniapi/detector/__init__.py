"""Blocking-event detector API: changepoints (upstream contract) and Atom
feeds of block/unblock events."""
