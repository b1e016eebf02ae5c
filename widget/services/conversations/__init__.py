"""Chats: what the chat panel reads (``chat_list``) and its change stamp (``list_stamps``), who may
see and answer (``viewers``, ``access``), claiming (``claims``), replies, starting a chat from a CRM
card (``outreach``), new-client ``distribution``, and who is responsible in both directions
(``responsibility``: CRM to chat, ``crm_responsible``: chat to CRM, ``kommo_webhooks``)."""
