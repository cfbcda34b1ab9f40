"""A picture of a testbed: node groups and their nodes on the testbed network, the roles
each node gets, the ports each group exposes and, for an instance that has been checked,
each node's check results. Drawn with Graphviz (the `graphviz` package and `dot`)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from testbeds.errors import PreflightError
from testbeds.model.plan import Plan
from testbeds.model.schema import NodeGroup

PASSED, FAILED = "#d8f0d8", "#f6d0d0"


def node_results(report: Path) -> dict[str, Counter[str]]:
    """Passed and failed checks per node, from a JUnit report (checks are ids [node])."""
    results: dict[str, Counter[str]] = {}
    if not report.is_file():
        return results
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name", "")
        if "[" not in name:
            continue
        node = name.split("[", 1)[1].rstrip("]").split("-")[0]
        bad = case.find("failure") is not None or case.find("error") is not None
        results.setdefault(node, Counter())["failed" if bad else "passed"] += 1
    return results


def build(
    plan: Plan,
    addresses: dict[str, str],
    results: dict[str, Counter[str]],
    hardware_notes: dict[str, str],
) -> Any:
    import graphviz

    dot = graphviz.Digraph(plan.instance, graph_attr={"rankdir": "LR", "fontname": "Helvetica",
                           "label": f"{plan.name} ({plan.instance}, target {plan.target})",
                           "compound": "true",
                           "labelloc": "t"},
                           node_attr={"shape": "box", "style": "rounded,filled",
                                      "fillcolor": "white", "fontname": "Helvetica"})  # fmt: skip
    with dot.subgraph(name="cluster_network") as network:
        network.attr(label=f"testbed network of {plan.instance}", style="dashed")
        if not plan.definition.include:
            for group in plan.definition.node_groups:
                _draw_group(dot, network, group, addresses, results, hardware_notes)
        # A composed testbed draws each included testbed's groups in a box of their own.
        origins = dict.fromkeys(plan.definition.origin(g.name) for g in plan.definition.node_groups)
        for origin in origins if plan.definition.include else ():
            with network.subgraph(name=f"cluster_testbed_{origin}") as box:
                box.attr(label=f"from {origin}", style="dotted")
                for group in plan.definition.node_groups:
                    if plan.definition.origin(group.name) == origin:
                        _draw_group(dot, box, group, addresses, results, hardware_notes)
    # What passes between the included testbeds: one edge per link and source group.
    first_node = {g.name: g.node_names()[0] for g in plan.definition.node_groups}
    for link in plan.definition.links:
        ports = ", ".join(f"{p.port}/{p.protocol}" for p in link.ports)
        for source in link.sources:
            dot.edge(first_node[source], first_node[link.to], label=ports, style="dashed",
                     ltail=f"cluster_{source}", lhead=f"cluster_{link.to}")  # fmt: skip
    entry = plan.entry_node().name
    dot.node("users", "users", shape="oval")
    dot.edge("users", entry, label="ssh (entry)")
    return dot


def _draw_group(
    dot: Any,
    parent: Any,
    group: NodeGroup,
    addresses: dict[str, str],
    results: dict[str, Counter[str]],
    hardware_notes: dict[str, str],
) -> None:
    """A node group as a box of its nodes, with the ports it exposes beside it."""
    with parent.subgraph(name=f"cluster_{group.name}") as cluster:
        cluster.attr(label=f"{group.name}: {group.description or ''}".rstrip(": "),
                     style="rounded")  # fmt: skip
        for name in group.node_names():
            counts = results.get(name, Counter())
            lines = [name]
            if name in addresses:
                lines.append(addresses[name])
            lines.append(", ".join(group.roles))
            lines += group.traits.notes(hardware_notes)
            if name in group.elastic_node_names():
                lines.append("elastic: started by Slurm when jobs wait")
            fill = "white"
            if counts:
                lines.append(f"checks: {counts['passed']} passed, {counts['failed']} failed")
                fill = FAILED if counts["failed"] else PASSED
            cluster.node(name, "\n".join(lines), fillcolor=fill)
        for port in group.expose:
            service = f"service_{group.name}_{port.port}"
            dot.node(service, f"{port.port}/{port.protocol}\n{port.description}",
                     shape="ellipse")  # fmt: skip
            for name in group.node_names():
                dot.edge(service, name, arrowhead="none", style="dotted")


def render(
    plan: Plan,
    out_base: Path,
    addresses: dict[str, str],
    report: Path,
    hardware_notes: dict[str, str],
) -> list[Path]:
    """Write <out_base>.svg and <out_base>.png; returns their paths."""
    if shutil.which("dot") is None:
        raise PreflightError("drawing needs Graphviz's dot (Debian: apt-get install graphviz)")
    dot = build(plan, addresses, node_results(report), hardware_notes)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in ("svg", "png"):
        written.append(Path(dot.render(outfile=out_base.with_suffix(f".{fmt}"), format=fmt,
                                       cleanup=True)))  # fmt: skip
    return written
