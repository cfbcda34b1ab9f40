"""The common role adds, of a site's extra authorities, only those the distribution lacks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

FILTER = Path(__file__).parents[2] / "testbeds" / "ansible_plugins" / "filter" / "certificates.py"
spec = importlib.util.spec_from_file_location("certificates", FILTER)
assert spec is not None and spec.loader is not None
certificates = importlib.util.module_from_spec(spec)
spec.loader.exec_module(certificates)


def pem(body: str, width: int = 64) -> str:
    lines = "\n".join(body[i : i + width] for i in range(0, len(body), width))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


SHIPPED = [pem("QUFB" * 30), pem("QkJC" * 30)]
PROXY = pem("Q0ND" * 30)


def test_a_whole_bundle_adds_only_the_authorities_the_node_lacks() -> None:
    machine_bundle = SHIPPED[0] + PROXY + SHIPPED[1]
    added = certificates.certificates_not_in(machine_bundle, "".join(SHIPPED))
    assert added == PROXY


def test_line_breaks_and_repeats_do_not_count_as_new() -> None:
    rewrapped = pem("QUFB" * 30, width=76)
    assert rewrapped != SHIPPED[0]
    assert certificates.certificates_not_in(rewrapped + SHIPPED[0], SHIPPED[0]) == ""
    assert certificates.certificates_not_in(PROXY + PROXY, "") == PROXY


def test_nothing_known_keeps_every_authority_in_order() -> None:
    bundle = PROXY + SHIPPED[1]
    assert certificates.certificates_not_in(bundle, "") == bundle
