"""Messenger channels: adding and managing them, the transports that send through them, the gateway secret."""
