"""The settings an admin saves: the CRM integration tab (``integration``), the advanced tab
(``advanced``), the mirrored CRM data every tab shows (``crm_mirror``), and the test message —
asked for (``trial_request``) and sent (``trial_message``)."""
