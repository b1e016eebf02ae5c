"""The fault and load suite: our server, job workers and both sandbox CRMs as separate OS processes,
driven through real HTTP while faults are injected, then counted in the CRM for lost and duplicated
clients. ``python -m faults --help``; the reduced CI run is ``tests/faults/test_fault_suite_reduced.py``.
"""
