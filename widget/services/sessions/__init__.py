"""Who is using our pages: Kommo widget sessions and one-time nonces."""
