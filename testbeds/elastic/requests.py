"""What Slurm's power-saving programs may ask the node broker, checked as data: an action
and node names, each one of the instance's elastic nodes, and nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, cast

Action = Literal["resume", "suspend", "resume-fail"]
ACTIONS: tuple[Action, ...] = ("resume", "suspend", "resume-fail")
# A request is one line; Slurm's host lists expand to at most a few hundred names.
MAX_REQUEST_BYTES = 64 * 1024
MAX_NODES = 256


class RequestRefused(ValueError):
    """The request is not one the broker carries out; the message says why, in one line."""


@dataclass(frozen=True)
class NodeRequest:
    action: Action
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Reply:
    accepted: bool
    message: str

    def line(self) -> bytes:
        return json.dumps({"accepted": self.accepted, "message": self.message}).encode() + b"\n"


def parse_request(line: bytes, elastic_nodes: frozenset[str]) -> NodeRequest:
    """The request in `line`, or RequestRefused: not JSON, another shape, another action,
    or a node that is not one of `elastic_nodes`."""
    if len(line) > MAX_REQUEST_BYTES:
        raise RequestRefused(f"request longer than {MAX_REQUEST_BYTES} bytes")
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise RequestRefused("request is not JSON") from None
    if not isinstance(data, dict) or set(data) != {"action", "nodes"}:
        raise RequestRefused("request must be an object with exactly `action` and `nodes`")
    action, nodes = data["action"], data["nodes"]
    if action not in ACTIONS:
        raise RequestRefused(f"unknown action (known: {', '.join(ACTIONS)})")
    if not isinstance(nodes, list) or not 1 <= len(nodes) <= MAX_NODES:
        raise RequestRefused(f"`nodes` must be a list of 1 to {MAX_NODES} names")
    if not all(isinstance(node, str) for node in nodes):
        raise RequestRefused("`nodes` must hold names")
    unknown = [node for node in nodes if node not in elastic_nodes]
    if unknown:
        shown = json.dumps(unknown[0])[:64]
        raise RequestRefused(f"{shown} is not an elastic node of this instance")
    if len(set(nodes)) != len(nodes):
        raise RequestRefused("a node is named twice")
    return NodeRequest(cast(Action, action), tuple(nodes))
