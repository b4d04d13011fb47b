"""The platform plane through the strict Python SDK 1.0.0: every response must decode."""

import cadenya
import pytest

from conftest import FAKE_MODEL


def test_account(admin):
    account = admin.accounts.retrieve()
    assert account.metadata.id.startswith("account_")
    assert admin.accounts.rotate_webhook_signing_key().webhook_events_hmac_secret.startswith("whsec_")
    assert admin.accounts.rotate_challenge_token().challenge_token


def test_keys_and_secrets(server, admin):
    ws = admin.workspace_admin.create(metadata={"name": "Strict"}, spec={})
    wsid = ws.metadata.id
    assert [w.metadata.id for w in admin.workspaces.list() if w.metadata.id == wsid] == [wsid]
    key = admin.api_keys.create(workspace_id=wsid, metadata={"name": "k"}, spec={"permissions": ["secrets:manage"]})
    assert key.spec.token and key.spec.system is False
    assert admin.api_keys.retrieve(key.metadata.id, workspace_id=wsid).spec.token == ""
    assert len(list(admin.api_keys.list(workspace_id=wsid))) == 1
    rotated = admin.api_keys.rotate(key.metadata.id, workspace_id=wsid)
    assert rotated.spec.token != key.spec.token
    assert admin.api_keys.disable(key.metadata.id, workspace_id=wsid).state == "STATE_DISABLED"
    assert admin.api_keys.enable(key.metadata.id, workspace_id=wsid).state == "STATE_ENABLED"

    scoped = cadenya.Cadenya(api_key=rotated.spec.token, base_url=server["base"])
    for i in range(7):
        scoped.workspace_secrets.create(workspace_id=wsid, metadata={"name": f"S{i}"}, spec={"value": "v"})
    names = [s.metadata.name for s in scoped.workspace_secrets.list(workspace_id=wsid, limit=3)]
    assert names == [f"S{i}" for i in range(7)]
    with pytest.raises(cadenya.APIError) as err:
        scoped.api_keys.list(workspace_id=wsid)
    assert err.value.status_code == 403 and err.value.code == 7


def test_agents_and_models(admin):
    wsid = list(admin.workspaces.list())[0].metadata.id
    agent = admin.agents.create(
        workspace_id=wsid,
        metadata={"name": "Strict agent"},
        spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_RANDOM", "system_prompt_data_schema": {"type": "object"}},
    )
    assert agent.state == "STATE_DRAFT"
    assert admin.agents.retrieve(agent.metadata.id, workspace_id=wsid).metadata.name == "Strict agent"
    assert admin.agents.archive(agent.metadata.id, workspace_id=wsid).state == "STATE_ARCHIVED"
    models = list(admin.models.list(workspace_id=wsid))
    assert [m.metadata.name for m in models] == ["openai/gpt-test", FAKE_MODEL]
    unusable = models[0]
    assert unusable.metadata.name == "openai/gpt-test"
    assert admin.models.disable(unusable.metadata.id, workspace_id=wsid).state == "STATE_DISABLED"
