"""Run on a Rucio client node with the client's Python: one Rucio operation, one JSON line.

python rucio_probe.py topology
python rucio_probe.py dataset SCOPE NAME RSE COUNT BYTES   (random files, uploaded)
    (with the storage token in the file STORAGE_TOKEN_FILE names, where the RSE takes tokens)
python rucio_probe.py written-dataset SCOPE NAME RSE COUNT BYTES CA_FILE
    (the same, written straight to the RSE's davs:// paths and registered in bulk)
python rucio_probe.py rule-add DID COPIES RSE_EXPRESSION
python rucio_probe.py rule RULE_ID
python rucio_probe.py rule-delete RULE_ID
python rucio_probe.py replicas DID          (every file of a DID: checksum, replicas)
python rucio_probe.py download DID DIR      (with the token STORAGE_TOKEN_FILE names)
"""

import json
import os
import sys
import tempfile
import zlib

from rucio.client import Client
from rucio.client.downloadclient import DownloadClient
from rucio.client.uploadclient import UploadClient


def storage_token():
    """The storage token in the file STORAGE_TOKEN_FILE names, if any."""
    token_file = os.environ.get("STORAGE_TOKEN_FILE")
    if not token_file:
        return None
    with open(token_file) as handle:
        return handle.read().strip()


def topology(client):
    rses = {}
    for rse in sorted(r["rse"] for r in client.list_rses()):
        rses[rse] = {
            "attributes": client.list_rse_attributes(rse),
            "schemes": sorted({p["scheme"] for p in client.get_protocols(rse)}),
            "hosts": sorted({p["hostname"] for p in client.get_protocols(rse)}),
        }
    distances = {
        src: {dst: (client.get_distance(src, dst) or [{}])[0].get("distance") for dst in rses}
        for src in rses
    }
    limits = client.get_local_account_limits("root")
    return {"rses": rses, "distances": distances, "limits": limits}


def dataset(client, scope, name, rse, count, size):
    """Upload COUNT files of random bytes into a new dataset; their adler32 computed here."""
    files = []
    workdir = tempfile.mkdtemp()
    items = []
    for index in range(int(count)):
        data = os.urandom(int(size) + index)
        path = os.path.join(workdir, f"{name}.f{index}")
        with open(path, "wb") as handle:
            handle.write(data)
        checksum = f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
        files.append({"name": os.path.basename(path), "adler32": checksum})
        items.append(
            {
                "path": path,
                "rse": rse,
                "did_scope": scope,
                "dataset_scope": scope,
                "dataset_name": name,
            }
        )
    uploader = UploadClient(client)
    uploader.auth_token = storage_token()
    uploader.upload(items)
    return {"did": f"{scope}:{name}", "files": files}


def written_dataset(client, scope, name, rse, count, size, ca_file):
    """COUNT files of random bytes written straight to the RSE's davs:// paths (one HTTPS
    session, the storage token in STORAGE_TOKEN_FILE) and registered in Rucio in bulk: a
    large dataset made in a minute where the upload client takes over a second a file
    (the replication benchmark's, not a check of uploads)."""
    import requests
    from rucio.rse import rsemanager

    settings = rsemanager.get_rse_info(rse)
    files = []
    for index in range(int(count)):
        data = os.urandom(int(size) + index)
        files.append(
            {
                "scope": scope,
                "name": f"{name}.f{index}",
                "bytes": len(data),
                "adler32": f"{zlib.adler32(data) & 0xFFFFFFFF:08x}",
                "data": data,
            }
        )
    pfns = rsemanager.lfns2pfns(
        settings,
        [{"scope": f["scope"], "name": f["name"]} for f in files],
        operation="write",
        scheme="davs",
    )
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {storage_token()}"
        session.verify = ca_file
        for item in files:
            url = "https://" + pfns[f"{scope}:{item['name']}"].removeprefix("davs://")
            session.put(url, data=item.pop("data"), timeout=60).raise_for_status()
    client.add_dataset(scope, name)
    client.add_replicas(rse, files)
    dids = [{"scope": f["scope"], "name": f["name"]} for f in files]
    for start in range(0, len(dids), 500):
        client.attach_dids(scope, name, dids[start : start + 500])
    return {"did": f"{scope}:{name}", "files": [{"name": f["name"]} for f in files]}


def rule_add(client, did, copies, expression):
    scope, name = did.split(":", 1)
    ids = client.add_replication_rule([{"scope": scope, "name": name}], int(copies), expression)
    return {"rule": ids[0]}


def rule(client, rule_id):
    info = client.get_replication_rule(rule_id)
    return {
        key: info[key]
        for key in (
            "state",
            "locks_ok_cnt",
            "locks_replicating_cnt",
            "locks_stuck_cnt",
            "rse_expression",
            "account",
            "scope",
        )
    }


def rule_boost(client, rule_id):
    """Have the repairer try a STUCK rule's locks again now (`rucio update-rule
    --boost-rule`), not at Rucio's next scheduled retry (hours later)."""
    client.update_replication_rule(rule_id, {"boost_rule": True})
    return {"boosted": rule_id}


def rule_delete(client, rule_id):
    """Delete the rule now: Rucio gives a deleted rule an hour of grace, which a lifetime
    of one second cuts short; the judge-cleaner then removes it and its locks."""
    client.delete_replication_rule(rule_id, purge_replicas=True)
    client.update_replication_rule(rule_id, {"lifetime": 1})
    return {"deleted": rule_id}


def replicas(client, did):
    scope, name = did.split(":", 1)
    found = {}
    for item in client.list_replicas([{"scope": scope, "name": name}], schemes=["root"]):
        found[item["name"]] = {
            "adler32": item["adler32"],
            "replicas": {rse: pfns[0] for rse, pfns in item["rses"].items()},
            "states": item.get("states", {}),
        }
    return found


def paths(client, did, rse):
    """Each file's path at an RSE read in place (its file:// protocol, LAN domain)."""
    scope, name = did.split(":", 1)
    found = {}
    for item in client.list_replicas(
        [{"scope": scope, "name": name}], schemes=["file"], rse_expression=rse, domain="lan"
    ):
        for pfn in item["rses"].get(rse, []):
            found[item["name"]] = {
                "pfn": pfn,
                "adler32": item["adler32"],
                "md5": item.get("md5"),
                "bytes": item["bytes"],
            }
    return found


def download(client, did, directory):
    """Download every file of a DID; each file's state (DONE, or why not)."""
    downloader = DownloadClient(client)
    downloader.auth_token = storage_token()
    try:
        results = downloader.download_dids([{"did": did, "base_dir": directory}])
    except Exception as exc:  # noqa: BLE001 - the probe reports every failure the same way
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {item["name"]: item["clientState"] for item in results}


COMMANDS = {
    "topology": topology,
    "dataset": dataset,
    "written-dataset": written_dataset,
    "rule-add": rule_add,
    "rule": rule,
    "rule-delete": rule_delete,
    "rule-boost": rule_boost,
    "replicas": replicas,
    "paths": paths,
    "download": download,
}

if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    print(json.dumps(COMMANDS[command](Client(), *args), default=str))
