"""Developer commands that are not part of the running server (``python -m widget.tools.<name>``)."""
