"""Circuit breakers: one per model string, shared by every call in flight.

Why: when a provider is rate-limiting or down, every caller retrying on its own
burns its attempts against a model that cannot answer and makes the storm
worse (forty items at eight in flight are a hundred calls into a 429). A
breaker counts *consecutive transient* failures of one model across all its
callers (the idea of litellm Router's cooldowns); at ``threshold`` it opens and
the model's calls pause for a cool-down (a longer ``Retry-After`` wins). While
it is open :func:`~concilium.agents.llm.chat` skips to the role's fallbacks, or,
with none left, waits out the cool-down without spending an attempt. After the
cool-down one caller is let through as a probe (half-open): its success closes
the breaker, its failure opens it again, and the callers that waited for that
probe get :class:`CircuitOpen` (``chat()`` counts it as one spent try), so a
dead model costs each caller at most one cool-down per attempt, not forever.

Breakers live with the event loop that runs the calls: everything in flight in
one evaluation, one service or one ``concilium run`` shares them, and two
``asyncio.run`` calls (two tests) never see each other's.

Example:
    >>> configure(BreakerPolicy(threshold=3, cooldown_s=2.0))
    >>> async with guard("openai/gpt-4o-mini", wait=True, transient=is_transient):
    ...     reply = await call_the_model()
    >>> cooling()  # [("openai/gpt-4o-mini", 1.7)] while it cools down
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DEFAULT_BREAKER",
    "Breaker",
    "BreakerPolicy",
    "Breakers",
    "CircuitOpen",
    "configure",
    "cooling",
    "guard",
    "registry",
]

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerPolicy:
    """When a model's breaker opens and for how long. Frozen: one policy per loop at a time."""

    threshold: int = 5
    """Consecutive transient failures (across all callers) that open the breaker; 0: never."""
    cooldown_s: float = 5.0
    """How long an open breaker pauses the model's calls (a longer ``Retry-After`` wins)."""
    max_cooldown_s: float = 60.0
    """Upper bound of one cool-down, whatever a provider's ``Retry-After`` asks for."""


DEFAULT_BREAKER = BreakerPolicy()


class CircuitOpen(Exception):
    """A model is cooling down and this caller may not (or no longer) wait for it."""


@dataclass
class Breaker:
    """The state of one model: closed, open (until a time) or half-open (one probe)."""

    model: str
    policy: BreakerPolicy
    failures: int = 0
    """Consecutive transient failures; any success resets it."""
    open_until: float | None = None
    """``time.monotonic()`` when the cool-down ends; ``None`` while closed."""
    trips: int = 0
    """Times the breaker opened (also a failed probe): waiters give up when it grows."""
    probing: bool = False
    """A half-open probe is in flight."""
    last_error: str = ""
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def state(self, now: float | None = None) -> State:
        if self.open_until is None:
            return "closed"
        return "open" if (now or time.monotonic()) < self.open_until else "half_open"

    def remaining_s(self) -> float:
        """Seconds of cool-down left (0 when closed or half-open)."""
        if self.open_until is None:
            return 0.0
        return max(0.0, self.open_until - time.monotonic())

    def describe(self) -> str:
        state = self.state()
        if state == "open":
            return f"cooling down {self.remaining_s():.1f} s after {self.failures} failures"
        if state == "half_open":
            return "cooling down: a probe call is testing it"
        return "closed"

    # ------------------------------------------------------------- transitions

    def _admit(self) -> Literal["go", "probe"] | None:
        """``go`` while closed, ``probe`` for the one call after a cool-down, else ``None``."""
        if self.open_until is None:
            return "go"
        if time.monotonic() >= self.open_until and not self.probing:
            self.probing = True
            return "probe"
        return None

    async def admit(self, *, wait: bool) -> Literal["go", "probe"] | None:
        """Whether a call may go now, after waiting out a cool-down if ``wait``.

        ``None`` tells the caller to move on: it may not wait, or the probe it
        waited for failed (the model is still down).
        """
        trips = self.trips
        while True:
            admitted = self._admit()
            if admitted is not None or not wait or self.trips != trips:
                return admitted
            # open: until the cool-down ends; half-open: until the probe settles
            remaining = self.remaining_s() or self.policy.max_cooldown_s
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    def succeeded(self, probe: bool) -> None:
        """The model answered: it is healthy, close the breaker."""
        was_open = self.open_until is not None
        self.failures, self.open_until = 0, None
        if probe:
            self.probing = False
        if was_open or probe:
            self._notify()

    def failed(self, probe: bool, retry_after_s: float | None, error: str = "") -> None:
        """A transient failure: count it; open (again) at the threshold or a failed probe."""
        self.failures += 1
        self.last_error = error
        if probe:
            self.probing = False
        threshold = self.policy.threshold
        if threshold <= 0 or (self.failures < threshold and not probe):
            if probe:
                self._notify()
            return
        cooldown = min(self.policy.max_cooldown_s,
                       max(self.policy.cooldown_s, retry_after_s or 0.0))
        until = time.monotonic() + cooldown
        if self.open_until is None or probe:
            self.trips += 1  # a transition: closed -> open, or half-open -> open
        self.open_until = max(until, self.open_until or 0.0)
        self._notify()

    def released(self, probe: bool) -> None:
        """The call ended with no verdict on the model (cancelled, or a non-transient error)."""
        if probe:
            self.probing = False
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class Breakers:
    """The breakers of one event loop, by model string, under one policy."""

    def __init__(self, policy: BreakerPolicy = DEFAULT_BREAKER) -> None:
        self.policy = policy
        self._by_model: dict[str, Breaker] = {}

    def get(self, model: str) -> Breaker:
        breaker = self._by_model.get(model)
        if breaker is None:
            breaker = self._by_model[model] = Breaker(model, self.policy)
        return breaker

    def configure(self, policy: BreakerPolicy) -> BreakerPolicy:
        """Use ``policy`` from now on (also for existing breakers); returns the previous one."""
        previous, self.policy = self.policy, policy
        for breaker in self._by_model.values():
            breaker.policy = policy
        return previous

    def cooling(self) -> list[tuple[str, float]]:
        """``(model, seconds left)`` of every breaker not closed (0 s: a probe is running).

        Safe to call from another thread (a progress bar's refresh thread).
        """
        return [(b.model, b.remaining_s()) for b in list(self._by_model.values())
                if b.open_until is not None]


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Breakers] = (
    weakref.WeakKeyDictionary()
)


def registry() -> Breakers:
    """The breakers of the running event loop (created on first use)."""
    loop = asyncio.get_running_loop()
    breakers = _registries.get(loop)
    if breakers is None:
        breakers = _registries[loop] = Breakers()
    return breakers


def configure(policy: BreakerPolicy) -> BreakerPolicy:
    """Set the running loop's breaker policy; returns the previous one."""
    return registry().configure(policy)


def cooling() -> list[tuple[str, float]]:
    """The running loop's models that are cooling down, with the seconds left."""
    return registry().cooling()


@contextlib.asynccontextmanager
async def guard(
    model: str,
    *,
    wait: bool,
    transient: Callable[[BaseException], bool],
    retry_after: Callable[[BaseException], float | None] = lambda error: None,
) -> AsyncIterator[None]:
    """Around one call of ``model``: admit it (or raise :class:`CircuitOpen`), then record it.

    Args:
        model: the model string the call goes to.
        wait: wait out a cool-down (the caller has no fallback left) instead of
            raising :class:`CircuitOpen` at once.
        transient: which errors count against the model (rate limits, 5xx, timeouts);
            any other error, and a cancellation, leave its state as it was.
        retry_after: how long an error asks callers to wait, if it says.

    Raises:
        CircuitOpen: the model is cooling down and the caller may not wait, or the
            probe it waited for failed.
    """
    breaker = registry().get(model)
    admitted = await breaker.admit(wait=wait)
    if admitted is None:
        raise CircuitOpen(breaker.describe())
    probe = admitted == "probe"
    try:
        yield
    except Exception as error:
        if transient(error):
            breaker.failed(probe, retry_after(error), type(error).__name__)
        else:
            breaker.released(probe)
        raise
    except BaseException:
        breaker.released(probe)
        raise
    breaker.succeeded(probe)
