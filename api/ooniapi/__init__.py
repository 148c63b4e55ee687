"""The OONI API: a Flask application with one blueprint per area."""
