"""The jobs. Each takes ids, calls one service, and is safe to run twice."""

from __future__ import annotations

# Jobs are added by the CRM packages' job modules, imported here so registration sees them.
import widget.jobs.bitrix24_jobs
import widget.jobs.conversation_jobs  # noqa: F401
from widget.jobs import gateway_jobs, kommo_jobs, reply_jobs, responsibility_jobs  # noqa: F401
