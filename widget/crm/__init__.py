"""One package per CRM, with the same files: provider (install, tokens), client (REST), events
(inbound), payloads (typed views of CRM JSON). Shared pieces live beside them."""
