"""Which pod may open a TCP connection to which port of another pod, under the NetworkPolicies
of a set of Kubernetes objects, decided the way Kubernetes decides it: a pod that no policy
of a direction selects is open in that direction; a pod that some do gets the union of
their rules. Both the source's egress and the destination's ingress must allow.

Pods come from the objects' pod templates (Deployments, StatefulSets, DaemonSets, Jobs and
bare Pods), each given an address in POD_NETWORK so that ipBlock rules apply to them as a
cluster's pod network would."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: Mapping[str, str]
    # Named container ports, for rules that name a port.
    ports: Mapping[str, int] = field(default_factory=dict)
    # Every container port, named or not.
    numbers: frozenset[int] = frozenset()
    ip: str = ""


def pods_of(objs: Iterable[dict[str, Any]]) -> list[Pod]:
    pods = []
    for obj in objs:
        if obj["kind"] in WORKLOADS:
            template = obj["spec"]["template"]
            labels, spec = template.get("metadata", {}).get("labels", {}), template["spec"]
        elif obj["kind"] == "Pod":
            labels, spec = obj["metadata"].get("labels", {}), obj["spec"]
        else:
            continue
        declared = [p for c in spec.get("containers", []) for p in c.get("ports", [])]
        pods.append(
            Pod(
                name=obj["metadata"]["name"],
                namespace=obj["metadata"]["namespace"],
                labels=labels,
                ports={p["name"]: p["containerPort"] for p in declared if "name" in p},
                numbers=frozenset(p["containerPort"] for p in declared),
            )
        )
    return pods


def with_addresses(pods: Iterable[Pod]) -> list[Pod]:
    hosts = POD_NETWORK.hosts()
    return [Pod(p.name, p.namespace, p.labels, p.ports, p.numbers, str(next(hosts))) for p in pods]


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector: every matchLabels pair and every matchExpressions term holds."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for term in selector.get("matchExpressions", []):
        key, operator, values = term["key"], term["operator"], term.get("values", [])
        present = key in labels
        held = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not held:
            return False
    return True


class Network:
    """The policies of a set of objects, and the namespaces' labels they select by."""

    def __init__(self, objs: Iterable[dict[str, Any]]) -> None:
        objs = list(objs)
        self.policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
        self.namespace_labels = {
            o["metadata"]["name"]: {
                **o["metadata"].get("labels", {}),
                "kubernetes.io/metadata.name": o["metadata"]["name"],
            }
            for o in objs
            if o["kind"] == "Namespace"
        }

    def allows(self, source: Pod, destination: Pod, port: int) -> bool:
        return self._direction(source, "Egress", destination, port) and self._direction(
            destination, "Ingress", source, port, destination
        )

    def _direction(
        self, pod: Pod, kind: str, peer: Pod, port: int, target: Pod | None = None
    ) -> bool:
        target = target or peer
        selecting = [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and selects(p["spec"].get("podSelector"), pod.labels)
            and kind in self._types(p["spec"])
        ]
        if not selecting:
            return True
        key, peers_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
        for policy in selecting:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if peers and not any(
                    self._peer(policy["metadata"]["namespace"], p, peer) for p in peers
                ):
                    continue
                if self._port(rule.get("ports"), port, target):
                    return True
        return False

    @staticmethod
    def _types(spec: Mapping[str, Any]) -> list[str]:
        if "policyTypes" in spec:
            return list(spec["policyTypes"])
        return ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]

    def _peer(self, namespace: str, peer: Mapping[str, Any], pod: Pod) -> bool:
        if "ipBlock" in peer:
            address = ipaddress.ip_address(pod.ip)
            block = peer["ipBlock"]
            return address in ipaddress.ip_network(block["cidr"]) and not any(
                address in ipaddress.ip_network(e) for e in block.get("except", [])
            )
        if "namespaceSelector" in peer:
            labels = self.namespace_labels.get(pod.namespace, {})
            if not selects(peer["namespaceSelector"], labels):
                return False
        elif pod.namespace != namespace:
            return False
        return selects(peer.get("podSelector"), pod.labels)

    @staticmethod
    def _port(ports: list[Mapping[str, Any]] | None, port: int, target: Pod) -> bool:
        if not ports:
            return True
        for entry in ports:
            if entry.get("protocol", "TCP") != "TCP":
                continue
            wanted = entry.get("port")
            if wanted is None:
                return True
            number = target.ports.get(wanted) if isinstance(wanted, str) else wanted
            if number is not None and number <= port <= entry.get("endPort", number):
                return True
        return False
