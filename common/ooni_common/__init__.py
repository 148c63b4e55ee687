"""Small shared core of the OONI backend: configuration, database client,
spool layout, metrics and logging. Domain code lives in the components."""
