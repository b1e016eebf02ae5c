"""CRM-neutral rules and types: no Flask, no SQL, no HTTP."""
