"""Webhooks verified by the official SDK 0.2.0 (`client.webhooks.unwrap`, which uses the
`standardwebhooks` library): every event of an objective reaches a receiver on loopback, each
delivery verifies against the account's secret, one `webhook-id` per event, in the log's order;
after a key rotation deliveries verify with the new key and, during the grace period, the old."""

import cadenya
import pytest

from conftest import ADMIN_TOKEN, FAKE_MODEL, wait_for

BUSY = ("STATE_PENDING", "STATE_RUNNING")


def _header(headers, name):
    return next(v for k, v in headers.items() if k.lower() == name)


def test_webhooks_verify_with_standardwebhooks(server, admin, webhook_receiver):
    url, got = webhook_receiver
    secret = admin.account.retrieve().info.webhook_events_hmac_secret
    ws = admin.workspace_admin.create(metadata={"name": "Webhooks"}, spec={})
    client = cadenya.Cadenya(api_key=ADMIN_TOKEN, base_url=server["base"], workspace_id=ws.metadata.id, webhook_key=secret)
    agent = client.agents.create(metadata={"name": "Hooked"}, spec={"webhook_events_url": url})
    client.agents.variations.create(agent.metadata.id, metadata={"name": "Fake"}, spec={"model_config": {"model_id": FAKE_MODEL}})
    o = client.objectives.create(agent_id=agent.metadata.id, system_prompt_data={}, first_user_message="hello")
    oid = o.metadata.id
    wait_for(lambda: client.objectives.retrieve(oid).state not in BUSY, "the objective's turn ends")
    events = list(client.objectives.list_events(oid))
    wait_for(lambda: len(got) >= len(events), f"{len(events)} deliveries")

    unwrapped = [client.webhooks.unwrap(body.decode(), headers=headers) for body, headers in got]
    assert [u.type for u in unwrapped][0] == "objective_event.user_message"
    assert [u.data.objective_event.metadata.id for u in unwrapped] == [e.metadata.id for e in events]
    ids = [_header(h, "webhook-id") for _, h in got]
    assert len(set(ids)) == len(ids)
    with pytest.raises(Exception):
        client.webhooks.unwrap(got[0][0].decode().replace("hello", "HELLO"), headers=got[0][1])

    # Rotation: the next deliveries carry both signatures.
    new = admin.account.rotate_webhook_signing_key().webhook_events_hmac_secret
    assert new != secret
    before = len(got)
    client.objectives.cancel(oid, reason="rotated")
    wait_for(lambda: len(got) > before, "the cancel's delivery")
    body, headers = got[-1]
    assert len(_header(headers, "webhook-signature").split(" ")) == 2
    assert client.webhooks.unwrap(body.decode(), headers=headers, key=new).type == "objective_event.cancelled"
    assert client.webhooks.unwrap(body.decode(), headers=headers, key=secret).type == "objective_event.cancelled"
