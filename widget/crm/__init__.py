"""The CRM adapters: one package per CRM, with the same files — ``provider`` (install, token
endpoint), ``client`` (REST), ``errors`` (the CRM's answers as our error types), ``events``
(inbound), ``payloads`` (typed views of CRM JSON), ``port`` (our ``CrmPort`` on the client).
Shared pieces live beside them: ``errors``, ``http`` (the one sender), ``tokens`` (the token pair
and the ``TokenStore`` the services hand in).

An adapter imports only ``widget.domain``, ``widget.config`` and itself: what it needs from our
tables (tokens, the account's address, closed stages, earlier attempts) it is handed by
``widget.services.accounts.crm_clients`` and the outbox."""
