"""Facts computed once per run and shared by every check thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def compute_once(obj: Any, name: str, compute: Callable[[], T]) -> T:
    """`obj`'s value `name`, computed by `compute` the first time any thread asks for it and
    kept in the object: later asks, from any thread, get that value."""
    cache = obj.__dict__
    if name in cache:  # later reads find the value in the instance dict first
        return cache[name]
    # One re-entrant lock per object: a fact may use other facts of the same object.
    with cache.setdefault("_fact_lock", threading.RLock()):
        if name not in cache:
            cache[name] = compute()
        return cache[name]


class shared_fact(Generic[T]):  # noqa: N801 - used like functools.cached_property
    """A fact computed once per object and shared by every check, even when checks running in
    several threads ask for it at the same time. functools.cached_property lost its lock in
    Python 3.12: four checks would each read an 8 MiB dpkg status file, into four objects."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> T:
        if obj is None:
            return self  # type: ignore[return-value]
        return compute_once(obj, self.name, lambda: self.compute(obj))
