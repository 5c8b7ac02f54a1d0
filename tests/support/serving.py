"""Serving an app over real HTTP from the test's own process: uvicorn on the test's event loop.

``serve(app)`` yields the base URL of ``app`` on 127.0.0.1, its lifespan run (worker, caches, shutdown) as a
server process would. The socket is bound before uvicorn starts, so there is no port race, and no
interpreter starts. Everything the test does meanwhile must await (Playwright's async API,
``httpx.AsyncClient``): a blocking call would stop the server too. Tests that need a process to kill or
several processes start their own (test_faults, test_many_processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


@contextlib.asynccontextmanager
async def serve(application: Any, *, start_within: float = 60) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # Keep-alive far beyond uvicorn's 5 s: a test's HTTP client sits idle while the browser works, and a
    # connection the server closes just as the client reuses it is a ReadError that tests nothing.
    config = uvicorn.Config(application, log_config=None, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=10, timeout_keep_alive=300)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + start_within
        while not server.started:
            if serving.done():
                serving.result()  # the startup's exception, if it raised one
                raise RuntimeError("the server stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the server did not start within {start_within} s")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving
        sock.close()
