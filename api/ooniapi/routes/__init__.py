"""One module per API area; each exposes a Flask Blueprint named ``bp``."""
