"""Site-profile fields that reach ssh_config, the inventory or a cloud as data: each is
refused with one message naming the rule unless it is exactly what it claims to be (a host
name or address, a file path ssh cannot read an option or %-token from, a network), and the
inventory layers are read from the expected files (testbeds/model/fields.py, the targets'
site.py, testbeds/model/loader.py, testbeds/inventory.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from testbeds import paths
from testbeds.errors import DefinitionError, DeployError
from testbeds.inventory import inventory_sources, render_inventory
from testbeds.model.fields import check_host
from testbeds.model.loader import load_site, missing_site_section, parse
from testbeds.model.plan import resolve
from testbeds.model.schema import PackageSources, SiteProfile, TestbedDefinition
from testbeds.targets.static.site import StaticSite

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host", ["10.0.0.5", "fd00::1", "bastion.example.org", "gw-1"])
def test_a_host_name_or_address_is_taken_as_is(host: str) -> None:
    assert check_host(host) == host


@pytest.mark.parametrize("host", ["-oProxyCommand=sh", "a b", 'x"', "a..b", ""])
def test_anything_else_is_not_a_host(host: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_host(host)
    assert str(refused.value) == f"{host!r} is not a host name or IP address"


def static_site(**fields: object) -> dict[str, object]:
    return {"private_key": "keys/id", "known_hosts": "keys/known_hosts", **fields}


@pytest.mark.parametrize(
    "value", ['key"file', "key%h", "key\nProxyCommand sh", "key\tfile", ""], ids=repr
)
def test_a_key_path_that_ssh_would_read_otherwise_is_refused(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        StaticSite.model_validate(static_site(private_key=value))
    (error,) = refused.value.errors()
    assert error["loc"] == ("private_key",)
    assert error["msg"] == (
        "Value error, must be a file path without quotes, '%' or control characters"
    )


def test_a_key_path_with_spaces_is_a_path() -> None:
    assert StaticSite.model_validate(static_site(private_key="my keys/id")).private_key == (
        "my keys/id"
    )


def test_a_site_error_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "site.yml"
    data = {"name": "x", "static": static_site(bastion={"host": "-oProxyCommand=sh"})}
    with pytest.raises(DefinitionError) as refused:
        parse(SiteProfile, path, data)
    assert str(refused.value) == (
        f"{path}: static.bastion.host: '-oProxyCommand=sh' is not a host name or IP address"
    )


def test_a_network_with_host_bits_is_still_a_network() -> None:
    site = SiteProfile.model_validate(
        {
            "name": "x",
            "local": {
                "debian_mirror": "http://deb.example/debian",
                "network_subnet": "10.89.0.1/24",
            },
        }
    )
    assert site.local is not None and site.local.network_subnet == "10.89.0.1/24"


def test_a_network_that_is_none_is_refused_by_name() -> None:
    with pytest.raises(ValidationError) as refused:
        SiteProfile.model_validate(
            {
                "name": "x",
                "local": {
                    "debian_mirror": "http://deb.example/debian",
                    "network_subnet": "10.0.0.0/99",
                },
            }
        )
    assert refused.value.errors()[0]["msg"] == (
        "Value error, '10.0.0.0/99' is not a network in CIDR notation"
    )


def test_reserved_variables_are_refused_with_the_reason() -> None:
    data = yaml.safe_load((REPO / "tests" / "fixtures" / "smoke.yaml").read_text())
    data["vars"] = {"ansible_become": True}
    with pytest.raises(ValidationError) as refused:
        TestbedDefinition.model_validate(data)
    assert refused.value.errors()[0]["msg"] == (
        "Value error, 'ansible_become' may not be set by a definition: ansible_* (connection, "
        "privilege) and testbed_* variables are the tool's"
    )


def test_package_sources_reach_the_roles_as_empty_strings_when_unset() -> None:
    assert PackageSources().as_role_vars() == {
        "common_http_proxy": "",
        "common_https_proxy": "",
        "common_no_proxy": [],
        "common_pip_index_url": "",
    }
    only_http = PackageSources(http_proxy="http://proxy.example:3128")
    assert only_http.as_role_vars()["common_https_proxy"] == "http://proxy.example:3128"


def test_an_unknown_site_lists_the_known_ones() -> None:
    with pytest.raises(DefinitionError) as refused:
        load_site("nowhere")
    known = sorted(p.name for p in paths.inventories_dir().iterdir() if (p / "site.yml").is_file())
    assert str(refused.value) == (
        f"{paths.inventories_dir() / 'nowhere'}: no site named 'nowhere' "
        f"(known: {', '.join(known)})"
    )


def test_a_missing_site_section_names_the_file_the_section_and_the_need() -> None:
    error = missing_site_section("local", "openstack", "a cloud")
    assert str(error) == (
        f"{paths.inventories_dir() / 'local' / 'site.yml'}: openstack: missing: the "
        "openstack target needs a cloud"
    )
    assert str(missing_site_section("local", "static")).endswith("the static target needs it")


def test_the_inventory_layers_are_common_then_the_site_then_the_hosts(tmp_path: Path) -> None:
    generated = tmp_path / "hosts.yml"
    sources = inventory_sources("partner-a", generated)
    assert sources == [
        str(REPO / "inventories" / "common" / "hosts.yml"),
        str(REPO / "inventories" / "partner-a" / "hosts.yml"),
        str(generated),
    ]
    assert all(Path(source).is_file() for source in sources[:2])


def test_an_inventory_without_every_node_names_the_missing_ones() -> None:
    plan = resolve(str(REPO / "tests" / "fixtures" / "smoke.yaml"), site="local", instance="i")
    assert len(plan.nodes) >= 2
    with pytest.raises(DeployError) as refused:
        render_inventory(plan, [], {})
    assert str(refused.value) == (
        f"the target returned no address for: {', '.join(n.name for n in plan.nodes)}"
    )
