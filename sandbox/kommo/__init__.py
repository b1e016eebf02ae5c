"""The sandbox Kommo: a runnable, contract-faithful stand-in for Kommo (amoCRM) and its CRM shell.

``create_app(...)`` builds it; ``app.extensions["kommo_sandbox"]`` is the ``KommoSandbox`` tests drive.
Contract source: ``/work/shared/reference/kommo.md`` (cited as "reference §n" in comments).
"""

from sandbox.kommo.app import create_app
from sandbox.kommo.clock import SandboxClock
from sandbox.kommo.state import Delivery, KommoSandbox, UnknownAccount

__all__ = ["Delivery", "KommoSandbox", "SandboxClock", "UnknownAccount", "create_app"]
