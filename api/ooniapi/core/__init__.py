"""What every area shares: the app factory, services, errors and their HTTP
mapping, request authentication, rate limiting, parameter and body
validation, ids, fixed reference data, the schema and the OpenAPI setup."""
