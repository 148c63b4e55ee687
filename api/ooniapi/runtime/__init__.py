"""Processes: the standalone runner with its scheduler and control socket,
the gunicorn server and WSGI entry point."""
