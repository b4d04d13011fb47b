"""The foundation's done-means story, driven by the official Python SDK 0.2.0."""

import os
import uuid

import cadenya
import pytest

from conftest import FAKE_MODEL


def _client(server, token, workspace_id=None):
    return cadenya.Cadenya(api_key=token, base_url=server["base"], workspace_id=workspace_id, )


def test_admin_key_file_and_account(server, admin):
    path = os.path.join(server["data"], "admin-api-key")
    assert os.stat(path).st_mode & 0o777 == 0o600
    account = admin.account.retrieve()
    assert account.metadata.id.startswith("account_")
    secret = account.info.webhook_events_hmac_secret
    assert secret.startswith("whsec_")
    rotated = admin.account.rotate_webhook_signing_key()
    assert rotated.webhook_events_hmac_secret != secret
    assert admin.global_api_key.retrieve().spec.token == ""


def test_workspace_key_rotation_and_secrets(server, admin):
    ext = "story-" + uuid.uuid4().hex[:8]
    ws = admin.workspace_admin.create(metadata={"name": "Story", "external_id": ext}, spec={})
    ws_id = ws.metadata.id
    assert ws_id.startswith("workspace_")
    names = [w.metadata.name for w in admin.workspaces.list()]
    assert "Story" in names and "default" in names

    key = admin.api_keys.create(
        workspace_id=ws_id,
        metadata={"name": "scoped"},
        spec={"permissions": ["secrets:manage", "api_keys:read"]},
    )
    token = key.spec.token
    assert token.startswith("cdz_sk_")
    assert admin.api_keys.retrieve(key.metadata.id, workspace_id=ws_id).spec.token == ""

    scoped = _client(server, token, ws_id)
    created = scoped.workspace_secrets.create(metadata={"name": "DB_PASSWORD"}, spec={"value": "hunter2-hunter2"})
    assert "hunter2" not in created.model_dump_json()
    got = scoped.workspace_secrets.retrieve(created.metadata.id)
    assert got.metadata.name == "DB_PASSWORD"
    assert "hunter2" not in got.model_dump_json()

    with pytest.raises(cadenya.PermissionDeniedError):
        scoped.api_keys.create(metadata={"name": "escalate"}, spec={"permissions": ["*"]})
    with pytest.raises(cadenya.NotFoundError):
        scoped.workspace_secrets.list(workspace_id="external_id:default")

    rotated = admin.api_keys.rotate(key.metadata.id, workspace_id=ws_id)
    new_token = rotated.spec.token
    assert new_token and new_token != token
    with pytest.raises(cadenya.AuthenticationError):
        scoped.workspace_secrets.list()
    fresh = _client(server, new_token, ws_id)
    assert [s.metadata.name for s in fresh.workspace_secrets.list()] == ["DB_PASSWORD"]

    admin.api_keys.disable(key.metadata.id, workspace_id=ws_id)
    with pytest.raises(cadenya.AuthenticationError):
        fresh.workspace_secrets.list()
    admin.api_keys.enable(key.metadata.id, workspace_id=ws_id)
    fresh.workspace_secrets.delete(created.metadata.id)
    admin.api_keys.delete(key.metadata.id, workspace_id=ws_id)


def test_pagination_through_sdk(server, admin):
    ws = admin.workspace_admin.create(metadata={"name": "Pages"}, spec={})
    client = _client(server, admin.api_key, ws.metadata.id)
    for i in range(12):
        client.workspace_secrets.create(metadata={"name": f"S{i:02d}"}, spec={"value": "v"})
    names = [s.metadata.name for s in client.workspace_secrets.list(limit=5)]
    assert names == [f"S{i:02d}" for i in range(12)]
    first = client.workspace_secrets.list(limit=5)
    assert len(first.items) == 5 and first.pagination.next_cursor


def test_agents_and_models(admin):
    wsid = [w for w in admin.workspaces.list() if w.metadata.name == "default"][0].metadata.id
    agent = admin.agents.create(
        workspace_id=wsid,
        metadata={"name": "Conformance agent", "external_id": "conf-agent"},
        spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_WEIGHTED"},
    )
    assert agent.metadata.id.startswith("agent_")
    got = admin.agents.retrieve("external_id:conf-agent", workspace_id=wsid)
    assert got.metadata.id == agent.metadata.id
    models = list(admin.models.list(workspace_id=wsid))
    assert [m.metadata.name for m in models] == ["openai/gpt-test", FAKE_MODEL]
    admin.agents.delete(agent.metadata.id, workspace_id=wsid)
