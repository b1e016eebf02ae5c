"""Use cases as verb functions. Each names its account explicitly and owns its transaction.

Grouped by capability: ``accounts``, ``sessions``, ``installs``, ``crm_data`` ("Refresh CRM data"),
``settings``, ``channels``, ``inbound`` (client messages in), ``conversations`` (chats); beside them
``outbox`` (durable CRM work every capability records into) and ``refusal`` (turning a caller away).
"""
