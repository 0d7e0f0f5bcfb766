"""Which other nodes follow a channel, so that a payload for a channel no other node follows is
handed to this node's own handler instead of travelling through Redis and back.

Most direct messages need it: the sender's channel carries the copy for the sender's other
devices, which usually sit on the same node, and on a small fleet the recipient's often do too.
Only the channels ``tracked`` says (users' channels) take part: a room's channel is followed by
most nodes, and a hello per channel and an answer per follower would cost more than it saves.

The followers of a channel tell each other on the channel itself (payloads starting with
``PREFIX``, which no JSON envelope does):
- ``hello <instance>`` when a node starts following the channel, and again whenever its
  subscription was renewed on a new shard connection (what was published meanwhile, hellos
  included, never reached it);
- ``here <instance> <hello's instance>`` in answer to another node's hello;
- ``bye <instance>`` when it stops following.
A node is *alone* on a channel when its last hello reached one subscriber (PUBLISH returns the
count: itself), no other node's hello or here came since, and the subscription it announced on
is still the live one.  Only then does ``alone`` answer True.

Invariant (why a newcomer misses nothing live): ``announce`` returns once every other follower
answered the hello (or a time-out passed), and the caller reads its ordering baselines only
then.  A node that answered had added the newcomer first, so whatever it stores later it
publishes; whatever it delivered locally before answering was stored before the baselines were
read, so the newcomer's ``session`` counts it (the client reads it with ``sync``), not the live
stream.  Every doubt errs towards publishing: an instance that vanished without ``bye`` stays
counted, a failed hello leaves the channel unknown, a hung follower that never answers still
counts among the hello's receivers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any

from chat.ports import MessageHandler

log = logging.getLogger(__name__)

PREFIX = b"\x00peers "
ANSWER_TIMEOUT = 1.0

#: publish(channel, payload) -> how many subscribers received it (Redis PUBLISH's reply).
Publish = Callable[[str, bytes], Awaitable[int]]
#: generation(channel) -> the live subscription's connection number, None if not subscribed.
Generation = Callable[[str], "int | None"]


@dataclass(slots=True)
class _State:
    """Kept for every user channel a node follows, so kept small: what only an announcement
    needs exists only while it runs."""

    others: set[str] = field(default_factory=set)
    receivers: int = 0  # of the last hello, itself included; 0: not known (yet)
    generation: int | None = None  # the subscription the last hello was sent on
    hello: asyncio.Task[None] | None = None  # the announcement in progress
    answers: set[str] | None = None  # while announcing: who answered this hello
    heard: asyncio.Future[None] | None = None  # while announcing: wakes the wait for answers

    @property
    def announcing(self) -> bool:
        return self.hello is not None and not self.hello.done()


def _clear_hello(state: _State, hello: asyncio.Task[None]) -> None:
    if state.hello is hello:
        state.hello = None  # a finished task need not be kept for every channel


class Peers:
    def __init__(
        self,
        node_id: str,
        handler: MessageHandler,
        publish: Publish,
        generation: Generation,
        *,
        tracked: Callable[[str], bool],
    ) -> None:
        self.instance = f"{node_id}.{secrets.token_hex(4)}"  # unique even if ids are not
        self._handler = handler
        self._publish = publish
        self._generation = generation
        self._tracked = tracked
        self._states: dict[str, _State] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- following -----------------------------------------------------------------------------

    def expect(self, channels: Collection[str]) -> None:
        """Channels about to be subscribed: answer hellos on them from now on."""
        for channel in channels:
            if self._tracked(channel):
                self._states.setdefault(channel, _State())

    async def announce(self, channels: Collection[str]) -> None:
        """Say hello on subscribed channels; return once every other receiver answered (or
        ``ANSWER_TIMEOUT`` passed).  An announcement already under way is joined, not
        restarted: its answers are the ones to wait for."""
        hellos = [self._hello(ch, state) for ch in channels if (state := self._states.get(ch))]
        if hellos:
            # shield: a caller giving up must not cancel an announcement others rely on.
            await asyncio.gather(*(asyncio.shield(h) for h in hellos))

    async def settled(self, channels: Collection[str]) -> None:
        """Return once the announcements under way on these channels are over (for a second
        socket on a channel: it must not be told it is connected before the first one)."""
        running = [h for ch in channels if (h := self._running(ch)) is not None]
        if running:
            await asyncio.gather(*(asyncio.shield(h) for h in running))

    def _running(self, channel: str) -> asyncio.Task[None] | None:
        state = self._states.get(channel)
        return state.hello if state is not None and state.announcing else None

    def forget(self, channels: Collection[str]) -> None:
        """Channels no longer followed: say bye (best effort: a missed bye costs publishes)."""
        for channel in channels:
            state = self._states.pop(channel, None)
            if state is not None:
                if state.hello is not None:
                    state.hello.cancel()
                self._spawn(self._say(channel, b"bye"))

    def alone(self, channel: str) -> bool:
        state = self._states.get(channel)
        if state is None or state.announcing:
            return False
        live = self._generation(channel)
        if live is None:
            return False
        if live != state.generation:  # renewed subscription: hellos may have been missed
            self._hello(channel, state)
            return False
        return state.receivers == 1 and not state.others

    def _hello(self, channel: str, state: _State) -> asyncio.Task[None]:
        if state.hello is None or state.hello.done():
            hello = state.hello = asyncio.create_task(self._announce(channel, state))
            hello.add_done_callback(lambda _: _clear_hello(state, hello))
        return state.hello

    async def _announce(self, channel: str, state: _State) -> None:
        state.receivers, state.generation = 0, self._generation(channel)
        if state.generation is None:  # not subscribed (a shard down): nobody could answer
            return
        state.answers = set()
        try:
            receivers = await self._say(channel, b"hello")
            async with asyncio.timeout(ANSWER_TIMEOUT):
                while len(state.answers) < receivers - 1:
                    state.heard = asyncio.get_running_loop().create_future()
                    await state.heard
        except TimeoutError:
            log.debug("%s: not every follower answered in time", channel)
        finally:
            state.answers = state.heard = None
        if receivers == 0 or state.generation is None:
            state.generation = None  # unknown: the next ``alone`` announces again
        else:
            state.receivers = receivers

    async def _say(self, channel: str, word: bytes, to: str = "") -> int:
        words = [word, self.instance.encode(), *([to.encode()] if to else [])]
        try:
            return await self._publish(channel, PREFIX + b" ".join(words))
        except Exception as exc:  # unknown: never alone until the next hello
            log.debug("%s: %s not published: %r", channel, word.decode(), exc)
            return 0

    # --- receiving -----------------------------------------------------------------------------

    async def on_payload(self, channel: str, payload: bytes) -> None:
        """The shards' handler: this protocol's payloads here, every other one passed on."""
        if not payload.startswith(PREFIX):
            await self._handler(channel, payload)
            return
        word, instance, to, *_ = [*payload[len(PREFIX) :].decode(errors="replace").split(), "", ""]
        state = self._states.get(channel)
        if state is None or instance == self.instance:
            return
        answers = state.answers if state.answers is not None else set()
        if word == "bye":
            state.others.discard(instance)
            answers.add(instance)  # it will not answer
            if not state.others:  # perhaps alone now: a new hello counts the receivers
                state.generation = None
        else:
            state.others.add(instance)
            if word == "here" and to == self.instance:
                answers.add(instance)
            elif word == "hello":
                self._spawn(self._say(channel, b"here", to=instance))
        if state.heard is not None and not state.heard.done():
            state.heard.set_result(None)

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for state in self._states.values():
            if state.hello is not None:
                self._tasks.add(state.hello)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
