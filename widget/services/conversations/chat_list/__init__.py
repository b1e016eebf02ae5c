"""What the chat panel reads: the chat list (global or one CRM card), the unanswered counters, and
one chat with its history — always through the visibility rules of ``widget.domain.visibility``,
so the list, the counters, the history and the send box agree with what the server enforces.

``page`` (the list), ``scopes`` (what a viewer may see of a card or of the unanswered chats),
``rows`` (a chat as the panel shows it), ``counters`` (the header's totals), ``one_chat``.
"""
