"""The cluster's workflows get storage tokens for the HPC site's endpoint alone: such a
token reads there and is refused by every grid site's endpoint (no token good everywhere)."""

from __future__ import annotations

import uuid

import pytest

from testbeds.checks.storage_endpoints.test_endpoints import Endpoint
from testbeds.checks.storage_tokens import READ_SCOPES as READ
from testbeds.checks.storage_tokens import WRITE_SCOPES as WRITE
from testbeds.checks.storage_tokens import StorageTokens

WORKFLOWS = "hpc-workflows"


@pytest.fixture(scope="module")
def workflow_tokens(testbed, client):
    """Tokens of the cluster's workflow client, on the data client node."""
    found = StorageTokens(testbed, client, WORKFLOWS, nodes=testbed.group("hpc"))
    yield found
    found.close()


def test_a_workflow_token_for_the_hpc_endpoint_is_refused_elsewhere(
    testbed, client, tokens, workflow_tokens
):
    """A file at each endpoint (written with the data managers' client): the workflow
    client's read token for the HPC site reads it there and nowhere else."""
    hpc = testbed.group("hpc")[0]
    local = f"/tmp/workflow-token-{uuid.uuid4().hex[:8]}"
    client.check_output(f"head -c 4096 /dev/urandom > {local}")
    read_with_workflow_token = {}
    try:
        for node in testbed.group("xrootd"):
            endpoint = Endpoint(testbed, client, node)
            name = endpoint.name("workflow-token")
            written, said = endpoint.put("davs", local, name, tokens.get(node, WRITE).token)
            assert written, said
            token = workflow_tokens.get(hpc, READ).token
            read_with_workflow_token[node] = endpoint.get("davs", name, f"{local}.back", token)[0]
            endpoint.remove(name, tokens.get(node, WRITE).token)
    finally:
        client.run(f"rm -f {local} {local}.back")
    assert read_with_workflow_token.pop(hpc), "the HPC endpoint refused its own audience"
    assert read_with_workflow_token and not any(read_with_workflow_token.values()), (
        read_with_workflow_token
    )
