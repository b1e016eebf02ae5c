"""Installing into a CRM and uninstalling: Kommo OAuth and Bitrix24 ONAPPINSTALL."""
