"""`testbed`: bring research-computing testbeds up, check them and take them down."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NoReturn

from testbeds import __version__, deploy
from testbeds.errors import DefinitionError, TestbedError, UsageError, printable
from testbeds.identity import service_identities
from testbeds.locks import instance_lock
from testbeds.model.loader import available_definitions, load_definition
from testbeds.model.plan import Plan, resolve
from testbeds.nodes import read_nodes
from testbeds.progress import reset_clock, say
from testbeds.state import InvalidInstanceName, StateDir, Timings
from testbeds.targets import get_target


def _emit(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in available_definitions():
        definition = load_definition(name)
        rows.append(
            {
                "name": name,
                "description": definition.description,
                "nodes": sum(g.count for g in definition.node_groups),
            }
        )
    text = "\n".join(f"{r['name']:<16} {r['nodes']:>3} nodes  {r['description']}" for r in rows)
    _emit(rows, args.json, text)
    return 0


def hardware_notes_for(target: str) -> dict[str, str]:
    try:
        return get_target(target).hardware_notes
    except TestbedError:
        return {}


def show_manifests(plan: Plan, folder: Path, as_json: bool) -> int:
    """Every object the Kubernetes program would create, one file each in `folder`."""
    from testbeds.targets.kubernetes.helm import tools
    from testbeds.targets.kubernetes.program.manifests import (
        everything,
        refuse_used_folder,
        run_offline,
        write_manifests,
    )

    if plan.target != "kubernetes":
        raise UsageError(f"--manifests: only with --target kubernetes (not {plan.target})")
    from testbeds.targets.kubernetes.site import kubernetes_site

    refuse_used_folder(folder)
    site = kubernetes_site(plan)  # one line naming the site.yml field that is missing
    say(f"running the Kubernetes program for {plan.instance} offline (Pulumi's mocks)")
    found = run_offline(plan)
    say(f"rendering {len(found.releases)} Helm release(s) with the pinned charts")
    helm = tools()
    if isinstance(helm, str):
        raise UsageError(f"--manifests: cannot render the charts: {helm}")
    written = write_manifests(everything(found, helm, site.kubernetes_version), folder)
    kinds = sorted({path.name.split("--")[1] for path in written})
    _emit(
        {"folder": str(folder), "objects": len(written), "kinds": kinds},
        as_json,
        f"{len(written)} object(s) written to {folder} (secrets as placeholders): "
        + ", ".join(kinds),
    )
    return 0


# Where a composition's links are a filter, not only a declaration.
LINKS_ENFORCED = (
    "security groups on openstack; local and static join every node in one network; "
    "kubernetes keeps its per-service network policies"
)


def cmd_show(args: argparse.Namespace) -> int:
    plan = resolve(args.name, site=args.site, target=args.target, instance=args.instance)
    if args.manifests:
        return show_manifests(plan, Path(args.manifests), args.json)
    data = plan.as_dict(hardware_notes_for(plan.target))
    lines = [
        f"{data['testbed']}: {data['description']}",
        f"  instance {data['instance']}, target {data['target']}, site {data['site']}, "
        f"entry node {data['entry']}",
    ]
    if data["include"]:
        parts = [f"{i['testbed']} ({', '.join(i['node_groups'])})" for i in data["include"]]
        directory = [g["name"] for g in data["node_groups"] if "directory" in g["roles"]]
        lines.append(f"  composed of: {'; '.join(parts)}; and this file's own groups")
        lines.append(f"  one directory and token issuer for all: {', '.join(directory) or 'none'}")
    lines.append("  node groups:")
    testbed_roles = {role for group in data["node_groups"] for role in group["roles"]}
    for group in data["node_groups"]:
        group["identity"] = [
            identity.__dict__ for identity in service_identities(group["roles"], testbed_roles)
        ]
        traits = group["traits"]
        hw = f"{traits['cpus']} cpu, {traits['memory_mb']} MB"
        if traits["gpus"]:
            hw += f", {traits['gpus']} gpu {traits['gpu_model']}".rstrip()
        if traits["fpgas"]:
            hw += f", {traits['fpgas']} fpga {traits['fpga_model']}".rstrip()
        if traits["infiniband"]:
            hw += ", infiniband"
        if traits["scratch"]:
            hw += f", {traits['scratch']['size_gb']} GB scratch at {traits['scratch']['path']}"
        lines.append(f"    {group['name']:<12} x{group['count']}  {', '.join(group['nodes'])}")
        if group["elastic_nodes"]:
            lines.append(
                f"      elastic, up to {group['max']}: Slurm starts "
                f"{', '.join(group['elastic_nodes'])} when jobs wait, removes them when idle"
            )
        if group["description"]:
            lines.append(f"      {group['description']}")
        if group["origin"] != data["testbed"]:
            lines.append(f"      from testbed {group['origin']}")
        lines.append(f"      roles: {', '.join(group['roles'])}")
        lines.append(f"      hardware: {hw}")
        if group["vars"]:
            lines.append(f"      group vars: {json.dumps(group['vars'], sort_keys=True)}")
        if group["expose"]:
            ports = ", ".join(
                f"{p['port']}/{p['protocol']} {p['description']}".rstrip() for p in group["expose"]
            )
            lines.append(f"      exposes: {ports}")
        lines += [f"      on target {data['target']}: {note}" for note in group["hardware_notes"]]
        lines += [f"      accepts: {i['service']}: {i['accepts']}" for i in group["identity"]]
    if data["links"]:
        lines.append(f"  links between the included testbeds ({LINKS_ENFORCED}):")
        for link in data["links"]:
            ports = ", ".join(f"{p['port']}/{p['protocol']}" for p in link["ports"])
            described = f" ({link['description']})" if link["description"] else ""
            lines.append(f"    {', '.join(link['from'])} -> {link['to']}: {ports}{described}")
    lines.append(f"  checks: {', '.join(data['checks'])}")
    if args.values:
        from testbeds.model.provenance import resolved_values

        values = resolved_values(plan)
        data["values"] = [v.__dict__ for v in values]
        lines.append("  values (last layer wins: role defaults < testbed < common < site):")
        for v in values:
            replaced = f" (over {', '.join(v.overrides)})" if v.overrides else ""
            lines.append(f"    {v.name} = {json.dumps(v.value)}  [{v.source}{replaced}]")
    _emit(data, args.json, "\n".join(lines))
    return 0


def print_timings(timings: Timings) -> None:
    """Where a configuration's time went: per role (summed over nodes, and per node on
    nodes from a baked image and on the others) and per play (wall time, and the part of
    it that is no node's task time: connecting, gathering facts, dispatching)."""

    def each(seconds: float | None) -> str:
        return "      -" if seconds is None else f"{seconds:6.1f}s"

    per_node = {r.role: r for r in timings.role_nodes}
    say("  role                      summed   per baked node  per warm node")
    for role, seconds in sorted(timings.roles.items(), key=lambda kv: -kv[1]):
        found = per_node.get(role)
        baked = found.per_node("baked") if found else None
        warm = found.per_node("warm") if found else None
        say(f"  role {role:<20} {seconds:7.1f}s  {each(baked):>14}  {each(warm):>13}")
    if timings.plays:
        overhead = sum(p.overhead_s for p in timings.plays)
        wall = sum(p.wall_s for p in timings.plays)
        say(f"  plays: {len(timings.plays)}, {wall:.1f}s, of which {overhead:.1f}s play overhead")
        for play in sorted(timings.plays, key=lambda p: -p.overhead_s)[:10]:
            say(f"    {play.name[:48]:<48} {play.wall_s:6.1f}s, overhead {play.overhead_s:5.1f}s")


def cmd_up(args: argparse.Namespace) -> int:
    plan = resolve(args.name, site=args.site, target=args.target, instance=args.instance)
    registry = None
    if args.baked_from:
        from testbeds.targets.local.baked_registry import Registry

        registry = Registry.parse(args.baked_from, "--baked-from")
        if plan.target != "local":
            raise UsageError(f"--baked-from: only with the local target (not {plan.target})")
    with instance_lock(plan.instance, args.command_line):
        if registry is not None:
            from testbeds.targets.local.baked_registry import pull_missing

            pull_missing(plan, registry)
        result = deploy.up(
            plan, verbose=args.verbose, run_verify=not args.no_verify, full=args.full
        )
    ok = result.verify is None or result.verify.ok
    phases = "  ".join(f"{k} {v:.1f}s" for k, v in result.timings.phases.items())
    say(f"{plan.instance} is {'up' if ok else 'up but FAILED its checks'}: {phases}")
    if args.timings:
        print_timings(result.timings)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, sort_keys=True))
    return 0 if ok else 1


def cmd_bake(args: argparse.Namespace) -> int:
    from testbeds.bake import bake  # imports the deploy machinery only when baking

    plan = resolve(args.name, site=args.site, target=args.target, instance=args.instance)
    registry = None
    if args.push:
        from testbeds.targets.local.baked_registry import Registry

        registry = Registry.parse(args.push, "--push")  # before anything is built
    images = bake(plan, verbose=args.verbose, command=args.command_line)
    if registry is not None:
        from testbeds.targets.local.baked_registry import push

        pushed = push(registry, images)
        _emit(
            {"images": images, "pushed": pushed},
            args.json,
            "\n".join(f"{g:<12} {ref}" for g, ref in sorted(pushed.items())),
        )
        return 0
    _emit(images, args.json, "\n".join(f"{g:<12} {ref}" for g, ref in sorted(images.items())))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    deploy.require_state(args.name)  # before the lock: a missing instance creates nothing
    with instance_lock(args.name, args.command_line):
        result = deploy.verify(args.name, extra_args=args.pytest_args, quiet=args.json)
    if args.json:
        print(json.dumps(deploy.verify_dict(result), indent=2))
    return 0 if result.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    data = deploy.status(args.name)
    lines = [f"{args.name}: {'up' if data['up'] else 'not up'}"]
    lines += [f"  {n['name']:<14} {n['state']:<10} {n['detail']}" for n in data["nodes"]]
    if data["last_verify"]:
        v = data["last_verify"]
        lines.append(f"  last verify: {v['tests']} checks, {v['failures']} failed")
    _emit(data, args.json, "\n".join(lines))
    return 0 if data["up"] else 3


def cmd_down(args: argparse.Namespace) -> int:
    # A missing instance takes no lock: it creates nothing, not even a lock file.
    held = StateDir(args.name).exists()
    with instance_lock(args.name, args.command_line) if held else nullcontext():
        data = deploy.down(args.name)
    if data["removed"] is None:
        _emit(data, args.json, f"{args.name}: no such instance (no state); nothing was removed")
        return 0
    text = "\n".join(
        [f"removed {item}" for item in data["removed"]]
        + ([f"secrets kept in {data['secrets_kept']}"] if data["secrets_kept"] else [])
        + [f"{args.name} is down ({data['timings_s']['destroy']:.1f}s)"]
    )
    _emit(data, args.json, text)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from pathlib import Path

    from testbeds.graph import render

    plan = resolve(args.name, site=args.site, target=args.target, instance=args.instance)
    state = StateDir(plan.instance)
    addresses = {}
    if state.nodes_file.is_file():
        addresses = {n.name: n.address for n in read_nodes(state.nodes_file)}
    out = Path(args.output) if args.output else Path.cwd() / plan.instance
    written = render(plan, out, addresses, state.report_file, hardware_notes_for(plan.target))
    _emit([str(p) for p in written], args.json, "\n".join(f"wrote {p}" for p in written))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="testbed", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def add(
        name: str, help_text: str, func: Any, takes_plan: bool = False
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        if takes_plan:
            p.add_argument("name", help="testbed definition (see `testbed list`) or a YAML path")
            p.add_argument("--site", default="local", help="site profile under inventories/")
            p.add_argument(
                "--target",
                default=None,
                help="where to deploy (default: the site's default_target)",
            )
            p.add_argument(
                "--instance",
                default=None,
                help="instance name, to run several copies (default: testbed name)",
            )
        return p

    add("list", "list the testbed definitions", cmd_list)
    show = add("show", "show the resolved plan: nodes, groups, roles, hardware", cmd_show, True)
    show.add_argument(
        "--values",
        action="store_true",
        help="also every Ansible value the roles get, and which layer it comes from",
    )
    show.add_argument(
        "--manifests",
        metavar="DIR",
        help="with --target kubernetes: write every object the program would create, one "
        "file each, into the new or empty folder DIR (charts rendered, secrets as placeholders)",
    )
    graph = add(
        "graph",
        "draw the testbed (and, once checked, each node's results) as SVG and PNG",
        cmd_graph,
        True,
    )
    graph.add_argument("--output", help="file name without extension (default: ./INSTANCE)")
    up = add("up", "create, configure and check a testbed (idempotent)", cmd_up, True)
    up.add_argument("--no-verify", action="store_true", help="skip the checks at the end")
    up.add_argument(
        "--full",
        action="store_true",
        help="run every role even if nothing changed since the last successful up",
    )
    up.add_argument("--timings", action="store_true", help="print per-role times")
    up.add_argument(
        "--baked-from",
        metavar="REGISTRY",
        help="local target: first fetch from REGISTRY the baked images this machine lacks "
        "(pushed there by `testbed bake --push`)",
    )
    up.add_argument("-v", "--verbose", action="store_true", help="print every task")
    bake = add(
        "bake",
        "build per-node-group images with the roles' packages installed; local `up` uses them",
        cmd_bake,
        True,
    )
    bake.add_argument("-v", "--verbose", action="store_true", help="print every task")
    bake.add_argument(
        "--push",
        metavar="REGISTRY",
        help="then copy each group's baked image to REGISTRY (host[:port][/namespace]; "
        "credentials from `podman login`)",
    )
    for name, help_text, func in (
        ("verify", "run the testbed's check suites against its nodes", cmd_verify),
        ("status", "show whether each node of an instance is running", cmd_status),
        ("down", "remove every container, network and volume of an instance", cmd_down),
    ):
        p = add(name, help_text, func)
        p.add_argument("name", help="instance name (the testbed name unless --instance was used)")
        if name == "verify":
            p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    return parser


def _one_line(exc: TestbedError) -> bool:
    """Errors about input are one line, its text escaped; others may list their details."""
    return isinstance(exc, (DefinitionError, InvalidInstanceName, UsageError))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return int(exc.code or 0)
    args.command_line = shlex.join(["testbed", *argv])
    reset_clock()
    try:
        code: int = args.func(args)
    except TestbedError as exc:
        print(f"testbed: error: {printable(str(exc)) if _one_line(exc) else exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("testbed: interrupted; run the same command again to converge", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into a command that stopped reading (`| head`): not an error.
        sys.stderr.close()
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
