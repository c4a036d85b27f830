"""FairSlots: a global limit on generations at once, handed out to the least recently served requester.

Nothing here waits for time: each prompt holds its slot until the test opens its gate, and the loop is only
yielded to (sleep(0)) so that tasks already scheduled can run."""

import asyncio
import random
from collections.abc import Callable, Iterable

import pytest

from bot.engine.slots import FairSlots


class Ledger:
    """What the slots did: who was served, in order, and how many held a slot at once."""

    def __init__(self, slots: FairSlots) -> None:
        self.slots = slots
        self.served: list[str] = []
        self.inside = 0
        self.most_inside = 0


class Prompt:
    """One generation asking for a slot; it keeps the slot until `finish()`.

    `while_leaving` runs inside the slot just before it is given back, `after_leaving` just after, both in
    the same step as the release (so a test can race a cancellation against a grant)."""

    def __init__(
        self,
        ledger: Ledger,
        owner: str,
        name: str,
        *,
        while_leaving: Callable[[], object] | None = None,
        after_leaving: Callable[[], object] | None = None,
    ) -> None:
        self.ledger, self.owner, self.name = ledger, owner, name
        self.while_leaving, self.after_leaving = while_leaving, after_leaving
        self.asked = asyncio.Event()
        self.entered = asyncio.Event()
        self._gate = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=name)

    async def _run(self) -> None:
        ledger = self.ledger
        self.asked.set()  # and, in the same step, queued (or served) by the slot() below
        async with ledger.slots.slot(self.owner, self.name):
            ledger.served.append(self.name)
            ledger.inside += 1
            ledger.most_inside = max(ledger.most_inside, ledger.inside)
            self.entered.set()
            try:
                await self._gate.wait()
            finally:
                ledger.inside -= 1
            if self.while_leaving:
                self.while_leaving()
        if self.after_leaving:
            self.after_leaving()

    def finish(self) -> None:
        self._gate.set()

    async def done(self) -> None:
        async with asyncio.timeout(5):
            await self.task


async def settle(prompts: Iterable[Prompt]) -> None:
    """Return once every prompt is either in a slot or queued for one."""
    async with asyncio.timeout(5):
        for prompt in prompts:
            await prompt.asked.wait()


def queued(slots: FairSlots) -> list[object]:
    return [ticket.label for ticket in slots.waiting()]


async def serve_one_by_one(prompts: dict[str, Prompt], ledger: Ledger) -> None:
    """Finish whatever holds the slot, over and over, until everybody was served."""
    while len(ledger.served) < len(prompts) or ledger.inside:
        current = prompts[ledger.served[-1]]
        await current.entered.wait()
        current.finish()
        await current.done()


async def test_capacity_is_never_exceeded_and_every_slot_comes_back() -> None:
    slots = FairSlots(3)
    ledger = Ledger(slots)
    prompts = [Prompt(ledger, f"user{i % 4}", f"p{i}") for i in range(12)]
    await settle(prompts)
    assert slots.busy == 3
    assert len(slots.waiting()) == 9
    while not all(p.task.done() for p in prompts):
        running = [p for p in prompts if p.entered.is_set() and not p.task.done()]
        assert 1 <= len(running) <= 3
        running[0].finish()
        await running[0].done()
        await asyncio.sleep(0)
    assert ledger.most_inside == 3
    assert sorted(ledger.served) == sorted(p.name for p in prompts)
    assert slots.busy == 0
    assert slots.waiting() == []


async def test_free_slots_are_taken_at_once_without_queueing() -> None:
    slots = FairSlots(2)
    ledger = Ledger(slots)
    first, second = Prompt(ledger, "a", "a0"), Prompt(ledger, "a", "a1")
    async with asyncio.timeout(5):
        await first.entered.wait()
        await second.entered.wait()
    assert slots.busy == 2
    assert slots.waiting() == []
    for prompt in (first, second):
        prompt.finish()
        await prompt.done()
    assert slots.busy == 0


async def test_a_single_prompt_starts_within_one_slot_of_another_users_twenty() -> None:
    slots = FairSlots(2)
    ledger = Ledger(slots)
    heavy = {f"a{i}": Prompt(ledger, "heavy", f"a{i}") for i in range(20)}
    await settle(heavy.values())
    light = Prompt(ledger, "light", "b0")
    await settle([light])
    assert queued(slots)[0] == "b0"
    heavy["a0"].finish()  # the first slot to come free goes to the light user
    await light.entered.wait()
    assert ledger.served[:3] == ["a0", "a1", "b0"]
    assert not heavy["a2"].entered.is_set()
    for prompt in [light, *heavy.values()]:
        prompt.finish()
    await asyncio.gather(*(p.done() for p in [light, *heavy.values()]))
    assert len(ledger.served) == 21
    assert slots.busy == 0


async def test_three_users_are_served_round_robin() -> None:
    slots = FairSlots(1)
    ledger = Ledger(slots)
    prompts: dict[str, Prompt] = {}
    for owner, count in (("a", 4), ("b", 3), ("c", 3)):  # a's whole job first, then b's, then c's
        for i in range(count):
            prompts[f"{owner}{i}"] = Prompt(ledger, owner, f"{owner}{i}")
    await settle(prompts.values())
    await serve_one_by_one(prompts, ledger)
    assert ledger.served == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2", "a3"]
    assert slots.busy == 0


async def test_a_user_arriving_later_joins_the_rotation_ahead_of_those_served() -> None:
    slots = FairSlots(1)
    ledger = Ledger(slots)
    prompts = {f"a{i}": Prompt(ledger, "a", f"a{i}") for i in range(3)}
    prompts |= {f"b{i}": Prompt(ledger, "b", f"b{i}") for i in range(3)}
    await settle(prompts.values())
    prompts["a0"].finish()
    await prompts["b0"].entered.wait()
    prompts["c0"] = Prompt(ledger, "c", "c0")  # never served: goes before a (served) and b (being served)
    await settle(prompts.values())
    assert queued(slots) == ["c0", "a1", "b1", "a2", "b2"]
    await serve_one_by_one(prompts, ledger)
    assert ledger.served == ["a0", "b0", "c0", "a1", "b1", "a2", "b2"]


@pytest.mark.parametrize("capacity", [1, 2, 3])
async def test_waiting_lists_tickets_in_the_order_they_are_then_served(capacity: int) -> None:
    slots = FairSlots(capacity)
    ledger = Ledger(slots)
    prompts: dict[str, Prompt] = {}
    for owner, count in (("a", 6), ("b", 2), ("c", 4), ("d", 1)):
        for i in range(count):
            prompts[f"{owner}{i}"] = Prompt(ledger, owner, f"{owner}{i}")
    await settle(prompts.values())
    predicted = queued(slots)
    assert len(predicted) == 13 - capacity
    running = list(ledger.served)
    # Finish the oldest running prompt each time: the next grant must be the next predicted ticket.
    while not all(p.task.done() for p in prompts.values()):
        oldest = prompts[running.pop(0)]
        oldest.finish()
        await oldest.done()
        await asyncio.sleep(0)
        running += [name for name in ledger.served if name not in running and not prompts[name].task.done()]
    assert ledger.served[capacity:] == predicted
    assert slots.busy == 0


async def test_cancelled_waiters_are_forgotten() -> None:
    slots = FairSlots(1)
    ledger = Ledger(slots)
    prompts = {name: Prompt(ledger, name[0], name) for name in ("a0", "b0", "c0", "c1", "d0")}
    await settle(prompts.values())
    for name in ("c0", "c1"):
        prompts.pop(name).task.cancel()
    assert queued(slots) == ["b0", "d0"]  # at once, before the cancelled tasks have even run
    await asyncio.sleep(0)  # now they run their cleanup
    assert queued(slots) == ["b0", "d0"]
    await serve_one_by_one(prompts, ledger)
    assert ledger.served == ["a0", "b0", "d0"]
    assert slots.busy == 0
    assert slots.waiting() == []


async def test_a_grant_racing_a_cancellation_passes_the_slot_on() -> None:
    slots = FairSlots(1)
    ledger = Ledger(slots)
    granted: dict[str, Prompt] = {}
    # The holder gives its slot to b0 and, in the same step, b0 is cancelled before it could run.
    holder = Prompt(ledger, "a", "a0", after_leaving=lambda: granted["b0"].task.cancel())
    granted["b0"] = Prompt(ledger, "b", "b0")
    granted["c0"] = Prompt(ledger, "c", "c0")
    await settle([holder, *granted.values()])
    holder.finish()
    await holder.done()
    with pytest.raises(asyncio.CancelledError):
        await granted["b0"].task
    async with asyncio.timeout(5):
        await granted["c0"].entered.wait()  # the slot b0 could not use went on to c0
    granted["c0"].finish()
    await granted["c0"].done()
    assert ledger.served == ["a0", "c0"]
    assert slots.busy == 0


async def test_a_waiter_cancelled_just_before_its_grant_does_not_break_the_release() -> None:
    # b0 is cancelled (its ticket's future is cancelled at once, its task runs later), then, in the same step,
    # the holder gives its slot back: the slot must go to c0, and the holder must leave cleanly.
    slots = FairSlots(1)
    ledger = Ledger(slots)
    waiters: dict[str, Prompt] = {}
    holder = Prompt(ledger, "a", "a0", while_leaving=lambda: waiters["b0"].task.cancel())
    waiters["b0"] = Prompt(ledger, "b", "b0")
    waiters["c0"] = Prompt(ledger, "c", "c0")
    await settle([holder, *waiters.values()])
    holder.finish()
    await holder.done()  # raised InvalidStateError when the release tried to grant the cancelled ticket
    with pytest.raises(asyncio.CancelledError):
        await waiters["b0"].task
    async with asyncio.timeout(5):
        await waiters["c0"].entered.wait()
    waiters["c0"].finish()
    await waiters["c0"].done()
    assert ledger.served == ["a0", "c0"]
    assert slots.busy == 0


async def test_the_last_waiter_cancelled_just_before_its_grant_leaves_the_slot_free() -> None:
    slots = FairSlots(1)
    ledger = Ledger(slots)
    waiters: dict[str, Prompt] = {}
    holder = Prompt(ledger, "a", "a0", while_leaving=lambda: waiters["b0"].task.cancel())
    waiters["b0"] = Prompt(ledger, "b", "b0")
    await settle([holder, *waiters.values()])
    holder.finish()
    await holder.done()
    await asyncio.gather(waiters["b0"].task, return_exceptions=True)
    assert slots.busy == 0
    assert slots.waiting() == []
    fresh = Prompt(ledger, "b", "b1")
    async with asyncio.timeout(5):
        await fresh.entered.wait()
    fresh.finish()
    await fresh.done()


@pytest.mark.parametrize("seed", range(20))
async def test_random_cancellations_never_leak_or_overfill_a_slot(seed: int) -> None:
    rng = random.Random(seed)
    slots = FairSlots(rng.randint(1, 4))
    ledger = Ledger(slots)
    prompts = [Prompt(ledger, f"u{rng.randint(0, 3)}", f"p{i}") for i in range(30)]
    await settle(prompts)
    async with asyncio.timeout(5):
        await shuffle_through(rng, slots, ledger, prompts)
    results = await asyncio.gather(*(p.task for p in prompts), return_exceptions=True)
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
    assert slots.busy == 0
    assert slots.waiting() == []


async def shuffle_through(
    rng: random.Random, slots: FairSlots, ledger: Ledger, prompts: list[Prompt]
) -> None:
    while not all(p.task.done() for p in prompts):
        pending = [p for p in prompts if not p.task.done()]
        # In one step: cancel some (running or waiting) and finish some running, in random order.
        for prompt in rng.sample(pending, k=min(len(pending), rng.randint(1, 3))):
            if rng.random() < 0.4:
                prompt.task.cancel()
            elif prompt.entered.is_set():
                prompt.finish()
        await asyncio.sleep(0)
        assert slots.busy <= slots.capacity
        assert ledger.inside <= slots.capacity
