"""The demo portal: a dozen employees (one fired, some non-ASCII names), three deal pipelines
(the default one is id 0), lead statuses, and a few clients — enough to click through every flow."""

from __future__ import annotations

from sandbox.bitrix24.portal import Portal, User

USERS = [
    # id, name, last name, e-mail, active, admin, lang, position
    (1, "Alexandra", "Moreno", "alexandra@acme.test", True, True, "en", "Director"),
    (2, "Иван", "Петров", "ivan@acme.test", True, False, "ru", "Sales rep"),
    (3, "José", "Núñez", "jose@acme.test", True, False, "es", "Sales rep"),
    (4, "João", "Gonçalves", "joao@acme.test", True, False, "pt", "Sales rep"),
    (5, "Zoë", "Ångström", "zoe@acme.test", True, False, "en", "Head of sales"),
    (6, "Мария", "Смирнова", "maria@acme.test", True, False, "ru", "Sales rep"),
    (7, "Liam", "O'Connor", "liam@acme.test", True, False, "en", "Quality control"),
    (8, "Fatima", "Zahra", "fatima@acme.test", True, False, "en", "Sales rep"),
    (9, "伟", "陈", "chen@acme.test", True, False, "en", "Sales rep"),
    (10, "Olga", "Kowalska", "olga@acme.test", False, False, "en", "Sales rep (left)"),
    (11, "Ana Lúcia", "Prado", "ana@acme.test", True, False, "pt", "Sales rep"),
    (12, "Dmitri", "Sokolov", "dmitri@acme.test", True, True, "ru", "IT administrator"),
]

DEFAULT_STAGES = [
    ("NEW", "New", None),
    ("PREPARATION", "Preparing documents", None),
    ("PREPAYMENT_INVOICE", "Prepayment invoice", None),
    ("EXECUTING", "In progress", None),
    ("FINAL_INVOICE", "Final invoice", None),
    ("WON", "Deal won", "S"),
    ("LOSE", "Deal lost", "F"),
    ("APOLOGY", "Analyze failure", "F"),
]
WHOLESALE_STAGES = [
    ("NEW", "New order", None),
    ("PREPARATION", "Quote sent", None),
    ("EXECUTING", "Shipping", None),
    ("WON", "Paid", "S"),
    ("LOSE", "Cancelled", "F"),
]
PARTNER_STAGES = [
    ("NEW", "Application", None),
    ("PREPARATION", "Negotiation", None),
    ("WON", "Partner signed", "S"),
    ("LOSE", "Rejected", "F"),
]
LEAD_STATUSES = [
    ("NEW", "Unassigned", None),
    ("IN_PROCESS", "In progress", None),
    ("PROCESSED", "Processed", None),
    ("JUNK", "Junk lead", "F"),
    ("CONVERTED", "Good lead", "S"),
]


def seed_directories(portal: Portal) -> None:
    # Category 2 was deleted once: ids need not be contiguous.
    portal.add_category(0, "General", 100, DEFAULT_STAGES)
    portal.add_category(1, "Wholesale", 200, WHOLESALE_STAGES)
    portal.add_category(3, "Partners", 300, PARTNER_STAGES)
    for i, (code, name, semantics) in enumerate(LEAD_STATUSES):
        portal.add_status("STATUS", code, name, (i + 1) * 10, semantics)


def seed_demo(portal: Portal) -> None:
    for uid, name, last, email, active, admin, lang, position in USERS:
        portal.users[uid] = User(uid, name, last, email, active, admin, lang, position)
    seed_directories(portal)
    maria = portal.new_record(
        "contact",
        {
            "NAME": "Maria",
            "LAST_NAME": "Silva",
            "PHONE": [{"ID": "1", "VALUE_TYPE": "WORK", "VALUE": "+55 11 98765-4321", "TYPE_ID": "PHONE"}],
            "ASSIGNED_BY_ID": "3",
        },
    )
    omar = portal.new_record(
        "contact",
        {
            "NAME": "Omar",
            "LAST_NAME": "Haddad",
            "PHONE": [{"ID": "2", "VALUE_TYPE": "MOBILE", "VALUE": "+971 50 123 4567", "TYPE_ID": "PHONE"}],
            "ASSIGNED_BY_ID": "2",
        },
    )
    portal.new_record(
        "deal",
        {
            "TITLE": "Maria Silva — 20 chairs",
            "CATEGORY_ID": "0",
            "STAGE_ID": "PREPARATION",
            "CONTACT_ID": maria["ID"],
            "ASSIGNED_BY_ID": "3",
        },
    )
    portal.new_record(
        "deal",
        {
            "TITLE": "Omar Haddad — wholesale",
            "CATEGORY_ID": "1",
            "STAGE_ID": "C1:NEW",
            "CONTACT_ID": omar["ID"],
            "ASSIGNED_BY_ID": "2",
        },
    )
    portal.new_record(
        "lead",
        {
            "TITLE": "Website enquiry",
            "NAME": "Kenji",
            "STATUS_ID": "NEW",
            "PHONE": [{"ID": "3", "VALUE_TYPE": "WORK", "VALUE": "+81 90 1234 5678", "TYPE_ID": "PHONE"}],
            "ASSIGNED_BY_ID": "5",
        },
    )


def bulk_users(portal: Portal, count: int, start_id: int = 1) -> None:
    """Replace the users with ``count`` generated ones (paging tests); user ``start_id`` is an admin."""
    portal.users.clear()
    for i in range(count):
        uid = start_id + i
        portal.users[uid] = User(uid, f"Employee{uid}", "Test", f"e{uid}@bulk.test", True, i == 0, "en")
