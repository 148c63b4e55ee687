"""Explorer findings (incidents): store and routes."""
