"""Messages from clients: receipts taken from the gateway, and turning them into chats and CRM records."""
