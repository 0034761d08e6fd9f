"""{{name}}: a vane balancing policy, as `vane plugin new` wrote it. Make it yours.

Among the backends that may receive the request, the one with the fewest requests in flight per
unit of weight goes first; ties take turns. The answer ranks `ranked` backends (default 2): the
first choice, then where a retry goes. Config: "" or "ranked=N", N from 1 to 8.
"""

from functools import cmp_to_key
from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import BackendInfo, Columns, Needs, Outcome, Request

DEFAULT_RANKED = 2
MAX_RANKED = 8
# The columns `pick` reads. `states` holds every backend's state bits, then these columns in the
# order `columns` declares them (weight before in-flight), one number per backend each.
COLUMNS = Columns.WEIGHT | Columns.IN_FLIGHT
# Bit 0 of a backend's state bits: it may receive this request.
ELIGIBLE = 1

# componentize-py gives each exported function its own `Policy` object, so what `configure`
# learns lives at module level: set on `self`, `pick` would never see it.
ranked = DEFAULT_RANKED


def parse_ranked(config: str) -> int:
    """The `ranked` setting of `config`; raising Err refuses the config with that message."""
    if config.strip() == "":
        return DEFAULT_RANKED
    key, _, value = config.partition("=")
    if key.strip() != "ranked":
        raise Err(f"unknown config {config!r}: expected \"\" or ranked=N")
    value = value.strip()
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_RANKED):
        raise Err(f"ranked={value}: expected 1 to {MAX_RANKED}")
    return int(value)


class Policy(exports.Policy):
    """The exported `policy` interface."""

    def configure(self, config: str, backends: List[BackendInfo]) -> Needs:
        global ranked
        # `result<needs, string>`: return the ok value; raise Err(message) for the error case.
        ranked = parse_ranked(config)
        return Needs(headers=[], feedback=False, target=False, columns=COLUMNS)

    def pick(self, request: Request, states: List[int]) -> List[int]:
        n = len(states) // 3
        weight = [max(w, 1) for w in states[n : 2 * n]]
        in_flight = states[2 * n : 3 * n]
        eligible = [i for i in range(n) if states[i] & ELIGIBLE]
        if not eligible:
            return []  # declining: vane's built-in round-robin serves the request
        # Ties take turns: the eligible backends in order, from the (sequence % m)-th of the m.
        start = request.sequence % len(eligible)
        turns = eligible[start:] + eligible[:start]

        # Fewest in flight per unit of weight first, compared exactly (a/b < c/d as a*d < c*b);
        # the sort is stable, so equal loads keep their turns.
        def by_load(a: int, b: int) -> int:
            return in_flight[a] * weight[b] - in_flight[b] * weight[a]

        turns.sort(key=cmp_to_key(by_load))
        return turns[:ranked]

    def observe(self, outcomes: List[Outcome]) -> None:
        pass
