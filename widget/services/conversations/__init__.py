"""Chats: the chat list, who may see and answer, replies, outreach, distribution and responsibility."""
