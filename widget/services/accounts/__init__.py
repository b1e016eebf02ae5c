"""Accounts: their state (active, suspended, uninstalled) and their CRM tokens."""
