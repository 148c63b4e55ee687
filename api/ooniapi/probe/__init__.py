"""What probes call: the collector (open, update, close a report), probe
services (register, login, check-in, test helpers, bouncer, geolookup...),
their body validation, configuration files and GeoIP."""
