"""The settings an admin saves: the CRM integration tab, the advanced tab and the test message."""
