"""One listening socket per worker (``SO_REUSEPORT``), so the kernel spreads connections evenly.

uvicorn's own multi-worker mode binds one socket in the supervisor and shares it with every worker.
All workers then wait on the same accept queue, and the first one to wake accepts every pending
connection in one go: a client opening 64 keep-alive connections at once was measured splitting them
50/14 or 25/39 between two workers. The busier worker's queue sets the tail latency while the other
has idle CPU. With ``SO_REUSEPORT`` each worker listens on its own socket and Linux picks a socket per
connection by hashing its address and port, which spread the same 64 connections about evenly
(29/35, 38/26, 27/37) and raised throughput (see benchmarks/README.md).

uvicorn's supervisor stays in charge of the workers (health checks, restarts, signals); it hands its
``sockets`` list to each worker by pickling it into the spawned process. ``ReusePortPlaceholder``
is that list's one entry: in a worker it unpickles as a *new* socket, bound with ``SO_REUSEPORT`` to
the same address. It is bound but not listening: asyncio calls ``listen()`` only after the app's
lifespan (model loading) has finished, so the kernel never routes a connection to a worker that
cannot answer yet, including one that restarts after a crash.
"""

from __future__ import annotations

import socket
from typing import Any

REUSE_PORT_SUPPORTED = hasattr(socket, "SO_REUSEPORT")


def bind_reuse_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ReusePortPlaceholder(socket.socket):
    """Stands in uvicorn's ``sockets`` list in the supervisor; becomes a fresh bound socket in a worker.

    multiprocessing's pickler passes a plain ``socket.socket`` to a child by duplicating its file
    descriptor (one socket shared by all). It looks reducers up by exact type, so this subclass
    falls through to ``__reduce__``, which tells the child to bind its own socket instead.
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.address = (host, port)

    def __reduce__(self) -> tuple[Any, ...]:
        return (bind_reuse_port, self.address)


def check_port_free(host: str, port: int) -> None:
    """Fail in the supervisor, with uvicorn's usual error, when something else holds the port.

    Every socket in a ``SO_REUSEPORT`` group must set the option, so a probe that binds *without* it
    fails exactly when another process (or another group) is listening there.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
