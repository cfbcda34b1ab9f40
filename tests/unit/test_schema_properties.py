"""Property-based tests of the schema: any valid definition plans consistently; bad counts fail."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbeds.errors import DefinitionError
from testbeds.model.loader import load_site, parse
from testbeds.model.plan import build_plan
from testbeds.model.schema import TestbedDefinition

ROLES = ["common", "munge", "slurm_controller", "slurm_compute", "slurm_login"]
group_names = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True).filter(lambda n: n not in ROLES)


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(group_names, min_size=1, max_size=5, unique=True))
    groups = [
        {
            "name": name,
            "count": draw(st.integers(min_value=1, max_value=6)),
            "roles": draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True)),
            "traits": {
                "cpus": draw(st.integers(1, 64)),
                "memory_mb": draw(st.integers(256, 1 << 20)),
            },
        }
        for name in names
    ]
    return {
        "name": "prop",
        "description": "generated",
        "checks": ["slurm_core"],
        "entry": names[0],
        "node_groups": groups,
    }


def node_names_clash(data: dict[str, Any]) -> bool:
    names: list[str] = []
    for g in data["node_groups"]:
        count = g["count"]
        names += [g["name"]] if count == 1 else [f"{g['name']}{i}" for i in range(1, count + 1)]
    return len(names) != len(set(names))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(definitions())
def test_valid_definitions_plan_every_node_once(data: dict[str, Any]) -> None:
    """Nodes in the plan = sum of counts, names unique, each role group lists its nodes."""
    try:
        definition = parse(TestbedDefinition, "gen.yaml", data)  # type: ignore[arg-type]
    except DefinitionError as exc:
        assert node_names_clash(data), str(exc)
        return
    assert not node_names_clash(data)
    plan = build_plan(definition, load_site("local"), "local")
    assert len(plan.nodes) == sum(g["count"] for g in data["node_groups"])
    assert len({n.name for n in plan.nodes}) == len(plan.nodes)
    groups = plan.groups()
    for node in plan.nodes:
        assert node.name in groups[node.group]
        assert all(node.name in groups[role] for role in node.roles)


@given(definitions(), st.integers(max_value=0), st.data())
def test_counts_below_one_are_refused(
    data: dict[str, Any], count: int, pick: st.DataObject
) -> None:
    """Any group with count < 1 (and no max: not elastic) is refused, naming that group's
    count."""
    group = pick.draw(st.sampled_from(data["node_groups"]))
    group["count"] = count
    try:
        parse(TestbedDefinition, "gen.yaml", data)  # type: ignore[arg-type]
    except DefinitionError as exc:
        assert f"node_groups[{group['name']}].count" in str(exc)
    else:
        raise AssertionError("a count below 1 was accepted")


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.integers(), min_size=1))
def test_unknown_top_level_keys_are_refused(extra: dict[str, int]) -> None:
    """Any key the schema does not know is an error, never silently ignored."""
    known = set(TestbedDefinition.model_fields)
    extra = {k: v for k, v in extra.items() if k not in known}
    if not extra:
        return
    data = {
        "name": "x",
        "description": "d",
        "checks": ["slurm_core"],
        "entry": "a",
        "node_groups": [{"name": "a", "roles": ["common"]}],
        **extra,
    }
    try:
        parse(TestbedDefinition, "gen.yaml", data)  # type: ignore[arg-type]
    except DefinitionError as exc:
        assert "unknown key" in str(exc)
    else:
        raise AssertionError("unknown keys were accepted")
