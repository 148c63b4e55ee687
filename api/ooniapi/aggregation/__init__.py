"""The Measurement Aggregation Toolkit endpoint, /api/v1/aggregation."""
