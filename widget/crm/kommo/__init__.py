"""Kommo (amoCRM): ``provider`` (install, token endpoint), ``client`` (API v4), ``errors`` (problem+json
as our errors), ``events`` (inbound verification), ``payloads`` (typed views of Kommo JSON),
``creates`` (lead and incoming-lead bodies and answers), ``port`` (our CRM port on the client),
``webhooks`` (entity webhooks). Contract: shared/reference/kommo.md."""
