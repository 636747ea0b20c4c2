"""Facts computed once per run and shared by every check thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


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
        cache = obj.__dict__
        if self.name in cache:  # later reads find the value in the instance dict first
            return cache[self.name]
        # One re-entrant lock per object: a fact may use other facts of the same object.
        with cache.setdefault("_fact_lock", threading.RLock()):
            if self.name not in cache:
                cache[self.name] = self.compute(obj)
            return cache[self.name]
