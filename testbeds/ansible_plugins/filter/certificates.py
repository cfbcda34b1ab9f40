"""certificates_not_in: the PEM certificates of one text that another does not hold. A site
may name a whole bundle as its extra authorities (a machine's own, with the authorities of
its TLS-inspecting proxy inside): a node then adds only those its distribution lacks, not
every authority a second time (each TLS client that loads the bundle reads all of it)."""

from __future__ import annotations

import re
from typing import Any

PEM = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


def _body(pem: str) -> str:
    return "".join(pem.split()[2:-2])


def certificates_not_in(bundle: str, known: str) -> str:
    """The certificates of `bundle` that `known` lacks, in their order, one per PEM block."""
    have = {_body(pem) for pem in PEM.findall(known)}
    missing = []
    for pem in PEM.findall(bundle):
        body = _body(pem)
        if body not in have:
            have.add(body)
            missing.append(pem.strip())
    return "".join(f"{pem}\n" for pem in missing)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"certificates_not_in": certificates_not_in}
