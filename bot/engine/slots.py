"""The global limit on generations running at once, shared fairly between requesters.

When every slot is busy, the next free slot goes to the waiting requester who was served least recently,
so one user's 25 prompts do not hold up another user's single prompt: it starts within one slot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(eq=False)
class Ticket:
    owner: str
    label: object = None  # what the caller wants to find again, e.g. (job id, index)
    granted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class FairSlots:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.busy = 0
        self._queues: dict[str, deque[Ticket]] = {}
        self._served: dict[str, int] = {}  # owner → number of the grant they last had
        self._grants = 0

    @asynccontextmanager
    async def slot(self, owner: str, label: object = None) -> AsyncIterator[None]:
        if self.busy < self.capacity and not self._queues:
            self.busy += 1
            self._grant(owner)
        else:
            ticket = Ticket(owner, label)
            self._queues.setdefault(owner, deque()).append(ticket)
            try:
                await ticket.granted
            except asyncio.CancelledError:
                if ticket.granted.done() and not ticket.granted.cancelled():
                    self._release()  # granted and cancelled in the same breath: pass the slot on
                else:
                    self._forget(ticket)
                raise
        try:
            yield
        finally:
            self._release()

    def waiting(self) -> list[Ticket]:
        """Every waiting ticket in the order it will be served (if nobody else arrives)."""
        # A cancelled ticket whose task has not run yet will never be served: leave it out already.
        queues = {
            owner: live
            for owner, q in self._queues.items()
            if (live := deque(t for t in q if not t.granted.cancelled()))
        }
        served = dict(self._served)
        order: list[Ticket] = []
        while queues:
            owner = self._next_owner(queues, served)
            order.append(queues[owner].popleft())
            if not queues[owner]:
                del queues[owner]
            served[owner] = self._grants + len(order)
        return order

    @staticmethod
    def _next_owner(queues: dict[str, deque[Ticket]], served: dict[str, int]) -> str:
        # Least recently served first; among those never served, whoever started waiting first.
        return min(queues, key=lambda owner: served.get(owner, -1))

    def _release(self) -> None:
        while self._queues:
            owner = self._next_owner(self._queues, self._served)
            queue = self._queues[owner]
            ticket = queue.popleft()
            if not queue:
                del self._queues[owner]
            if ticket.granted.cancelled():
                # Its task was cancelled but has not run yet (it will find itself forgotten): granting it
                # would raise here and lose the slot.
                continue
            self._grant(owner)
            ticket.granted.set_result(None)  # the slot passes straight on: busy stays the same
            return
        self.busy -= 1

    def _grant(self, owner: str) -> None:
        self._grants += 1
        self._served[owner] = self._grants

    def _forget(self, ticket: Ticket) -> None:
        queue = self._queues.get(ticket.owner)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            if not queue:
                del self._queues[ticket.owner]
