"""Blocking-event detector: CUSUM over hourly blocking shares of the
fastpath, per (country, network, target)."""
