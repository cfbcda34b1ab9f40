"""Which model validates each target's section of a site profile (`local:`, `openstack:`,
`static:`, `kubernetes:`). Each target package owns the model of its section
(targets/<target>/site.py); this registry names them by path and imports them when a
profile is first validated, so that the definition model imports no target package when
it is loaded (the targets import the model, never the other way round)."""

from __future__ import annotations

import importlib

from pydantic import BaseModel

# target -> "module:Model"
SECTIONS = {
    "local": "testbeds.targets.local.site:LocalSite",
    "openstack": "testbeds.targets.openstack.site:OpenStackSite",
    "static": "testbeds.targets.static.site:StaticSite",
    "kubernetes": "testbeds.targets.kubernetes.site:KubernetesSite",
}


def section_models() -> dict[str, type[BaseModel]]:
    """The model of each target's section, by target name."""
    models = {}
    for target, where in SECTIONS.items():
        module, name = where.split(":")
        model = getattr(importlib.import_module(module), name)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{where} is not a model of a site section")
        models[target] = model
    return models
