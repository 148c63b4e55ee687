"""OONI Run links: descriptor validation, revisions in the store, routes."""
