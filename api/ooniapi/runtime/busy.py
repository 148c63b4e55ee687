"""The answer both servers give a connection that finds every thread busy:
an immediate, explicit 503 rather than an unseen wait in a queue."""
from __future__ import annotations

import socket

BUSY_BODY = b'{"error": "Server busy, please retry later"}\n'
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
               % (len(BUSY_BODY), BUSY_BODY))


def send_busy(sock: socket.socket) -> None:
    """Best effort: the client may be gone already. The caller closes."""
    try:
        sock.setblocking(False)
        sock.send(BUSY_ANSWER)
    except OSError:
        pass
