"""Kommo background jobs."""
