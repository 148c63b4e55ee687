"""The private /api/_ statistics OONI Explorer draws its pages from."""
