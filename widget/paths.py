"""Where the checkout is: templates, static files, catalogs and migrations are found from here."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
