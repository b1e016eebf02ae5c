"""Kommo (amoCRM): ``provider`` (install, tokens), ``client`` (API v4), ``events`` (inbound
verification), ``payloads`` (typed views of Kommo JSON). Contract: shared/reference/kommo.md."""
