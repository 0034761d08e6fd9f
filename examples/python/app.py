"""The example balancing policy "fastest", in Python (componentize-py).

Prefers the backend with the lowest latency per unit of weight; a request may pin a healthy
backend by name with a header (default `x-vane-pin`). See README.md.
"""

from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import BackendInfo, Columns, Needs, Outcome, Request

DEFAULT_HEADER = "x-vane-pin"
MAX_ANSWER = 3
# The columns `pick` reads. `states` holds the state bits, then these, in the order `columns`
# declares them (weight before latency-ewma-us), one number per backend each.
COLUMNS = Columns.WEIGHT | Columns.LATENCY_EWMA_US
# Bit 0 of a backend's state bits: it may receive this request.
ELIGIBLE = 1

# componentize-py gives each exported function its own `Policy` object, so what `configure`
# learns must live at module level: set on `self`, `pick` would never see it.
header = DEFAULT_HEADER
names: List[str] = []


class Policy(exports.Policy):
    """The exported `policy` interface."""

    def configure(self, config: str, backends: List[BackendInfo]) -> Needs:
        global header, names
        # `result<needs, string>`: return the ok value; raise Err(message) for the error case.
        if config == "":
            wanted = DEFAULT_HEADER
        elif config.startswith("header="):
            wanted = config[len("header="):]
        else:
            raise Err(f"unknown config {config}: expected header=NAME")
        header = wanted
        names = [backend.name for backend in backends]
        return Needs(headers=[wanted], feedback=False, target=False, columns=COLUMNS)

    def pick(self, request: Request, states: List[int]) -> List[int]:
        n = len(states) // 3
        healthy = [bits & ELIGIBLE != 0 for bits in states[:n]]
        weight = states[n : 2 * n]
        latency = states[2 * n : 3 * n]

        pinned = None
        for h in request.headers or []:
            if h.name != header:
                continue
            for i in range(min(n, len(names))):
                if healthy[i] and names[i] == h.value:
                    pinned = i
                    break
            if pinned is not None:
                break

        if n == 0:
            return []
        shift = request.sequence % n
        candidates = sorted(
            (i for i in range(n) if healthy[i] and i != pinned),
            key=lambda i: ((latency[i] * 1000) // weight[i], (i + n - shift) % n),
        )
        answer = candidates if pinned is None else [pinned] + candidates
        return answer[:MAX_ANSWER]

    def observe(self, outcomes: List[Outcome]) -> None:
        pass
