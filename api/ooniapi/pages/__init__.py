"""Landing page, /health, /metrics, robots.txt and the legacy file routes."""
