"""Webhooks verified by the strict SDK (cadenya 1.0.0): every event of an objective reaches a
receiver on loopback, `unwrap_webhook` verifies each delivery's Standard Webhooks signature
against the account's secret and decodes the payload (every always-present field), one
`webhook-id` per event, in the log's order; a tampered body does not verify."""

import cadenya
import pytest
from cadenya import types
from cadenya._webhooks import WebhookVerificationError

from conftest import ADMIN_TOKEN, FAKE_MODEL, wait_for

BUSY = ("STATE_PENDING", "STATE_RUNNING")


def test_strict_webhooks_verify_and_decode(server, admin, webhook_receiver):
    url, got = webhook_receiver
    secret = admin.accounts.retrieve().info.webhook_events_hmac_secret
    ws = admin.workspace_admin.create(metadata={"name": "Strict webhooks"}, spec={})
    client = cadenya.Cadenya(api_key=ADMIN_TOKEN, base_url=server["base"], workspace_id=ws.metadata.id, webhook_secret=secret)
    agent = client.agents.create(metadata={"name": "Hooked"}, spec={"webhook_events_url": url})
    client.agents.variations.create(
        agent.metadata.id, metadata={"name": "Fake"}, spec={"model_config": {"model_id": FAKE_MODEL}}
    )
    o = client.objectives.create(agent_id=agent.metadata.id, system_prompt_data={}, first_user_message="hello")
    oid = o.metadata.id

    def settled():
        return client.objectives.retrieve(oid).state not in BUSY

    wait_for(settled, "the objective's turn ends")
    events = list(client.objectives.list_events(oid))
    assert len(events) >= 3, [type(e.data).__name__ for e in events]
    wait_for(lambda: len(got) >= len(events), f"{len(events)} deliveries")

    decoded = [client.unwrap_webhook(body, headers) for body, headers in got]
    assert all(isinstance(d, types.ObjectiveEventWebhookData) for d in decoded)
    assert [d.data.objective_event.metadata.id for d in decoded] == [e.metadata.id for e in events]
    assert all(d.data.objective.id == oid for d in decoded)
    assert all(d.data.agent.id == agent.metadata.id for d in decoded)
    assert decoded[0].type == "objective_event.user_message"
    ids = [next(v for k, v in h.items() if k.lower() == "webhook-id") for _, h in got]
    assert len(set(ids)) == len(ids), "one webhook-id per event"

    # The module-level verifier, and a tampered body.
    body, headers = got[0]
    assert cadenya.unwrap_webhook(body, headers, secret=secret).type == "objective_event.user_message"
    with pytest.raises(WebhookVerificationError):
        cadenya.unwrap_webhook(body.replace(b"hello", b"HELLO"), headers, secret=secret)

    # Every delivery is in the log, COMPLETED.
    log = list(client.agents.list_webhook_deliveries(agent.metadata.id, objective_id=oid))
    completed = [d for d in log if d.data.status == "WEBHOOK_DELIVERY_STATUS_COMPLETED"]
    assert sorted(d.data.webhook_id for d in completed) == sorted(ids)
