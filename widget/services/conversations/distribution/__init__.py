"""New clients: ask the CRM who the client is, then either follow the CRM's responsible (known
client) or create what the channel's settings say and distribute the client (product.md §2, §3).

Two outbox operations carry the flow:

* ``resolve_client`` — ``find_client`` in the CRM; the record step applies the answer: a known
  client's chat goes to the contact's responsible; an unknown one is distributed under a row lock on
  the channel's settings (round robin is one turn at a time across processes) and a
  ``create_entities`` operation is recorded in the same transaction.
* ``create_entities`` — first ``find_created(key)`` (a previous attempt may have created it and died
  before recording), else create the contact + lead/deal or the Kommo incoming lead, with the chat's
  responsible *at that moment* (someone may have claimed it while the CRM was down).

A third, ``await_creator``, re-checks a chat of a person whose other chat is creating their CRM
record, so one person writing on two channels gets one contact.

``keys`` (the operations and their idempotency keys), ``routing`` (who gets the client),
``redistribution`` (after an eligibility change), ``settling`` (one person on several channels),
``handlers`` (the outbox handlers).
"""
