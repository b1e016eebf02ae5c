#!/usr/bin/env bash
# Translations of our pages (Flask-Babel). English is the source language: the msgids in the code
# and templates are the English text, so English needs no catalog.
#
#   ./scripts/i18n.sh             extract, update and compile (what you run after adding strings)
#   ./scripts/i18n.sh extract     code + templates -> widget/translations/messages.pot
#   ./scripts/i18n.sh update      messages.pot -> each language's messages.po (new strings arrive empty)
#   ./scripts/i18n.sh compile     messages.po -> messages.mo, which the app reads
#   ./scripts/i18n.sh init xx     start a catalog for a new language xx (then add it to LANGS below)
#
# tests/unit/test_translations.py extracts with the same mapping (babel.cfg) and keywords, and
# fails while any message lacks a translation.
set -euo pipefail
cd "$(dirname "$0")/.."

LANGS="es pt ru"
DIR=widget/translations
POT="$DIR/messages.pot"
PYBABEL=.venv/bin/pybabel
[ -x "$PYBABEL" ] || PYBABEL=pybabel

extract() {
  # Babel skips directories starting with "_" unless told otherwise, which would hide
  # templates/_macros and templates/_partials; --ignore-dirs replaces that default.
  # Locations carry the file but not the line, so unrelated edits do not churn the catalogs.
  "$PYBABEL" -q extract -F babel.cfg \
    -k lazy_gettext -k _l -k lazy_ngettext:1,2 -k lazy_pgettext:1c,2 \
    --add-comments=TRANSLATORS: \
    --ignore-dirs='.* __pycache__ node_modules instance dist' \
    --add-location=file --sort-by-file \
    --project="Wazzup CRM integration" --version=1 \
    -o "$POT.new" .
  # Keep the old file when only its creation date would change, so the diff shows real changes.
  if [ -f "$POT" ] && diff -q <(grep -v '^"POT-Creation-Date' "$POT") \
      <(grep -v '^"POT-Creation-Date' "$POT.new") >/dev/null; then
    rm "$POT.new"
  else
    mv "$POT.new" "$POT"
  fi
  echo "extracted $(grep -c '^msgid "[^"]' "$POT" || true) messages into $POT"
}

update() {
  # No fuzzy matching: Babel's guesses for short strings are mostly wrong ("Reply" took the
  # translation of "Employee"), so new and changed strings arrive empty for a translator.
  for lang in $LANGS; do
    "$PYBABEL" -q update -i "$POT" -d "$DIR" -l "$lang" --init-missing --ignore-obsolete \
      --no-fuzzy-matching --ignore-pot-creation-date
  done
}

compile() {
  # Entries a translator marked fuzzy (unsure) are not compiled: English shows instead, and
  # the translations test reports them until someone confirms them.
  "$PYBABEL" -q compile -d "$DIR"
}

case "${1:-all}" in
  all) extract; update; compile ;;
  extract) extract ;;
  update) update ;;
  compile) compile ;;
  init)
    [ -n "${2:-}" ] || { echo "usage: $0 init <language code>" >&2; exit 2; }
    [ -f "$POT" ] || extract
    "$PYBABEL" init -i "$POT" -d "$DIR" -l "$2"
    ;;
  *) echo "usage: $0 [all|extract|update|compile|init xx]" >&2; exit 2 ;;
esac
