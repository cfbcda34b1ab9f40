"""`testbed graph`: the picture names every node group and node, the roles, the exposed
ports, what the target emulates, and each node's check results from a JUnit report."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from testbeds.graph import build, node_results, render
from testbeds.model.plan import resolve
from testbeds.targets.local.target import LocalTarget

REPORT = """<testsuites><testsuite name="testbed-checks" tests="4">
<testcase classname="c" name="test_slurmd_running[cpu1]"/>
<testcase classname="c" name="test_slurmd_running[cpu2]"><failure message="down"/></testcase>
<testcase classname="c" name="test_base_package_installed[cpu2-curl]"/>
<testcase classname="c" name="test_batch_job_spans_two_nodes"/>
</testsuite></testsuites>"""


def test_results_are_counted_per_node(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(REPORT)
    assert node_results(report) == {
        "cpu1": Counter(passed=1),
        "cpu2": Counter(passed=1, failed=1),
    }
    assert node_results(tmp_path / "missing.xml") == {}


def test_picture_names_groups_nodes_ports_and_emulation() -> None:
    plan = resolve("hpc-access", instance="pic")
    source = build(
        plan, {"cpu1": "10.0.0.5"}, {"cpu2": Counter(failed=1)}, LocalTarget.hardware_notes
    ).source
    for node in ("controller", "login", "cpu1", "cpu2", "gpu"):
        assert f"\t{node} [" in source
    assert "cluster_cpu" in source and "10.0.0.5" in source
    assert "8000/tcp" in source and "JupyterHub" in source
    assert "emulated GPU" in source
    assert "checks: 0 passed, 1 failed" in source


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_writes_svg_and_png(tmp_path: Path) -> None:
    plan = resolve("data-movement", instance="pic")
    written = render(plan, tmp_path / "dm", {}, tmp_path / "none.xml", {})
    assert [p.suffix for p in written] == [".svg", ".png"]
    assert written[0].read_text().lstrip().startswith(("<?xml", "<svg"))
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_composed_picture_boxes_each_included_testbed() -> None:
    """A composed testbed draws one network, each included testbed's groups in a box named
    after it, the composition's own groups in its box, and its links between groups."""
    plan = resolve("research-infrastructure", instance="pic")
    source = build(plan, {}, {}, LocalTarget.hardware_notes).source
    assert source.count("subgraph cluster_network") == 1
    for origin in ("hpc-access", "data-movement", "research-infrastructure"):
        assert f'subgraph "cluster_testbed_{origin}"' in source
        assert f'label="from {origin}"' in source
    for node in ("controller", "cpu2", "site1", "ddm", "client", "hpc"):
        assert f"\t{node} [" in source
    # The transfer node sits in the composition's own box, after data-movement's.
    assert source.index("cluster_testbed_research-infrastructure") < source.index("\thpc [")
    # Each link is an edge from its source groups to its target, labelled with its ports.
    assert 'hpc -> controller [label="2049/tcp"' in source
    assert 'site1 -> hpc [label="1094/tcp, 8443/tcp"' in source
    assert "lhead=cluster_controller" in source
