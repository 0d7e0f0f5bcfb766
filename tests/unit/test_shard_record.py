"""A shard's subscription record (chat/adapters/shards/record.py): what is sent, when a
channel counts as live, and who is woken; on real servers: integration/test_broker.py."""

from __future__ import annotations

from chat.adapters.shards.record import SubscriptionRecord


async def test_a_channel_is_live_once_its_subscribe_is_answered_and_wakes_its_waiters():
    record = SubscriptionRecord()
    record.want(["a", "b"])
    waiters = record.waiters(["a", "b"])
    assert record.to_send() == (["a", "b"], []) and record.to_send() == ([], [])
    record.subscribed("a")
    assert record.confirmed == {"a"} and waiters[0].done() and not waiters[1].done()
    assert not record.complete and record.waiters(["a"]) == []
    record.subscribed("b")
    assert record.complete and waiters[1].done()


async def test_a_channel_let_go_and_wanted_again_waits_for_its_new_subscribe():
    """Until the UNSUBSCRIBE is answered the server is about to drop the channel: neither
    the earlier confirmation nor the UNSUBSCRIBE's answer makes it live again."""
    record = SubscriptionRecord()
    record.want(["a"])
    record.to_send()
    record.subscribed("a")
    record.unwant(["a"])
    assert record.to_send() == ([], ["a"]) and record.confirmed == set()
    record.want(["a"])
    (waiter,) = record.waiters(["a"])
    assert record.to_send() == (["a"], [])
    record.unsubscribed("a")
    assert not waiter.done() and "a" not in record.confirmed
    record.subscribed("a")
    assert waiter.done() and record.confirmed == {"a"}


async def test_an_early_answer_does_not_confirm_a_channel_with_a_later_command_pending():
    record = SubscriptionRecord()
    record.want(["a"])
    record.to_send()  # SUBSCRIBE a
    record.unwant(["a"])
    record.to_send()  # UNSUBSCRIBE a, before the SUBSCRIBE is answered
    record.subscribed("a")
    assert record.confirmed == set()
    record.unsubscribed("a")
    assert record.confirmed == set() and record._unanswered == {}


async def test_nobody_wanting_a_channel_wakes_its_waiters_and_a_new_connection_asks_again():
    record = SubscriptionRecord()
    record.want(["a", "b"])
    waiter_a, waiter_b = record.waiters(["a", "b"])
    record.to_send()
    record.subscribed("b")
    record.unwant(["a"])
    assert waiter_a.done() and waiter_b.done()
    record.new_connection()
    assert record.confirmed == set() and not record.complete
    assert record.to_send() == (["b"], [])  # everything wanted, from scratch
    (waiter,) = record.waiters(["b"])
    record.close()
    assert waiter.cancelled()
