"""Background entry points: ids in, one service call, safe to retry.

The queue is only a nudge: whatever must happen is recorded in the database first, and periodic
sweeps pick up anything a lost or crashed job left pending.
"""
