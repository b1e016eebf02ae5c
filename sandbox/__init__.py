"""Runnable, contract-faithful stand-ins for the CRMs (Kommo, Bitrix24) used by the demo and the tests."""
