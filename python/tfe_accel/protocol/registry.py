"""The route table: which stock ABY3 dispatch targets AcceleratedABY3 replaces.

Stock ABY3 dispatches ``prot.<op>(x, y)`` to ``_<op>_<dispatch ids>`` (e.g. ``_matmul_private_public``).
A route registers for one such target with ``@route("matmul", "private", "public")``; the protocol
looks it up by ``(op, "private_public")``. Nothing is found by name: the table is the list.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

ROUTES: Dict[Tuple[str, str], Callable] = {}


def route(op: str, *dispatch_ids: str):
    """Register the decorated function as the fused replacement of stock's ``_<op>_<ids>``."""
    key = (op, "_".join(dispatch_ids))

    def register(fn):
        if key in ROUTES:
            raise ValueError(f"a route for {op}({key[1]}) is already registered: {ROUTES[key].__name__}")
        ROUTES[key] = fn
        return fn

    return register


def lookup(op: str, suffix: str) -> Optional[Callable]:
    return ROUTES.get((op, suffix))


def routed_operations():
    """Names of the stock dispatch targets that AcceleratedABY3 replaces (``<op>_<ids>``)."""
    return sorted(f"{op}_{suffix}" for op, suffix in ROUTES)
