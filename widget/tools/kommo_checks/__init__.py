"""Checks a Kommo widget archive (a source folder or a widget.zip) against Kommo's rules before an
upload or a marketplace submission: ``archive.validate_path`` runs them all and returns a
``report.Report``. One module per kind of rule: ``manifest``, ``i18n``, ``moderation`` (naming and
images), ``code_checks`` (script.js and style.css), ``origin`` (our base URL in script.js).
"""
