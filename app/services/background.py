"""Background jobs of this process (exports, imports): asyncio tasks held so none is garbage-collected
while it runs, and cancelled at shutdown (each job marks itself failed when cancelled)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, job: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(job, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def join(self) -> None:
        """Until every job running now has ended (a test's wait for a job it let go; shutdown cancels)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
