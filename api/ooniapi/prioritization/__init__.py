"""Which URLs a probe gets at check-in: the rules and weights (rules), the
weighted ranking (ranking), the per-network check-in cache (cache) and the
admin URL-priority routes (routes)."""
