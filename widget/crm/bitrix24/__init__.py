"""Bitrix24: ``provider`` (install trust via ``app.info``, token refresh), ``client`` (REST, limits),
``errors`` (error codes as our errors), ``snapshot`` (the "Refresh CRM data" read), ``events``
(inbound verification), ``payloads`` (typed views of what Bitrix24 sends and answers), ``php`` (the
PHP bracket encoding), ``port`` (our CRM port on the client)."""
