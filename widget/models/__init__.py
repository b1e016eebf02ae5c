"""SQLAlchemy models, one module per aggregate. Importing this package registers every table."""

from widget.models.accounts import Account, AccountToken
from widget.models.channels import AccountSettings, Channel, ChannelRole, ChannelSettings
from widget.models.chat_list import ChatListStamp  # noqa: F401  (registers the table)
from widget.models.conversations import Chat  # noqa: F401  (registers the conversation tables)
from widget.models.crm_data import Employee, Pipeline, Stage
from widget.models.intake import InboundDelivery  # noqa: F401  (registers the table)
from widget.models.kommo import KommoExchangedTokens  # noqa: F401  (registers the table)
from widget.models.replies import OutboundDelivery  # noqa: F401  (registers the table)
from widget.models.responsibility import ChatCrmCheck  # noqa: F401  (registers the responsibility tables)
from widget.models.security import CrmEvent, PendingInstall, UsedNonce
from widget.models.trial_messages import TestMessageRequest  # noqa: F401  (registers the table)

__all__ = [
    "Account",
    "AccountSettings",
    "AccountToken",
    "Channel",
    "ChannelRole",
    "ChannelSettings",
    "CrmEvent",
    "Employee",
    "PendingInstall",
    "Pipeline",
    "Stage",
    "UsedNonce",
]
