/* The "CRM integration" tab: the roles dialog, presets, "Refresh CRM data", Save and the test
   message dialog. The page's form is the unsaved state; the server is the authority on what is
   valid (Save answers every problem at once, keyed by field). Names from the CRM are only ever
   put into the page as text (textContent), never as HTML. */
(function () {
  'use strict';

  var W = window.Widget;
  var data, t, form, dialog, rowsBody, opener, snapshot;

  function $(id) {
    return document.getElementById(id);
  }

  function fmt(text, values) {
    return String(text).replace(/%\((\w+)\)s/g, function (_m, key) {
      return values[key] === undefined ? '' : String(values[key]);
    });
  }

  /* --- roles ------------------------------------------------------------------------------------ */

  function rows() {
    return Array.prototype.slice.call(rowsBody.querySelectorAll('tr[data-employee-id]'));
  }
  function roleSelect(row) {
    return row.querySelector('select');
  }
  function newToggle(row) {
    return row.querySelector('input[type="checkbox"]');
  }
  function isInactive(row) {
    return row.getAttribute('data-inactive') === '1';
  }

  // "Gets new clients" means nothing without a role and is disabled for quality control.
  function syncToggle(row) {
    var role = roleSelect(row).value;
    var toggle = newToggle(row);
    var off = isInactive(row) || role === '' || role === 'qc';
    if (off && !isInactive(row)) toggle.checked = false;
    toggle.disabled = off;
    var hint = row.querySelector('[data-testid="head-recommended"]');
    if (hint) hint.hidden = role === 'head';
  }

  function capture() {
    var state = {};
    rows().forEach(function (row) {
      state[row.getAttribute('data-employee-id')] = { role: roleSelect(row).value, gets: newToggle(row).checked };
    });
    return state;
  }

  function restore(state) {
    rows().forEach(function (row) {
      var saved = state[row.getAttribute('data-employee-id')];
      if (!saved) return;
      roleSelect(row).value = saved.role;
      newToggle(row).checked = saved.gets;
      syncToggle(row);
    });
  }

  // Who has which role, as the server renders it (templates/_partials/roles_summary.html): per
  // group the first names, the rest behind "+N more".
  var ROSTER_SHOWN = 5;

  function rosterGroup(group, names) {
    var span = document.createElement('span');
    span.className = 'roster-group';
    span.setAttribute('data-group', group);
    span.setAttribute('data-testid', 'roster-' + group);
    var label = document.createElement('span');
    label.className = 'roster-label';
    label.textContent = t.roster[group] + ':';
    span.appendChild(label);
    span.appendChild(document.createTextNode(' '));
    var shown = document.createElement('span');
    shown.className = 'roster-names';
    shown.textContent = names.slice(0, ROSTER_SHOWN).join(', ');
    span.appendChild(shown);
    if (names.length > ROSTER_SHOWN) {
      var more = document.createElement('details');
      more.className = 'roster-more';
      more.setAttribute('data-testid', 'roster-more');
      var summary = document.createElement('summary');
      summary.textContent = ' ' + fmt(t.more, { num: names.length - ROSTER_SHOWN });
      var rest = document.createElement('span');
      rest.className = 'roster-names';
      rest.textContent = ', ' + names.slice(ROSTER_SHOWN).join(', ');
      more.appendChild(summary);
      more.appendChild(rest);
      more.addEventListener('toggle', W.scheduleFit);
      span.appendChild(more);
    }
    return span;
  }

  function updateSummary() {
    var roster = { seller: [], head: [], qc: [], new: [] };
    rows().forEach(function (row) {
      if (isInactive(row)) return;
      var role = roleSelect(row).value;
      if (!roster[role]) return;
      var name = row.querySelector('.emp-name').textContent;
      roster[role].push(name);
      if (newToggle(row).checked) roster['new'].push(name);
    });
    var box = $('roles-summary');
    box.textContent = '';
    ['seller', 'head', 'qc', 'new'].forEach(function (group) {
      if (!roster[group].length) return;
      if (box.childNodes.length) {
        var sep = document.createElement('span');
        sep.className = 'roster-sep';
        sep.setAttribute('aria-hidden', 'true');
        sep.textContent = ' \u00b7 ';
        box.appendChild(sep);
      }
      box.appendChild(rosterGroup(group, roster[group]));
    });
    if (!box.childNodes.length) box.textContent = t.summary_none;
    W.scheduleFit();
  }

  function applyFilter() {
    var q = $('roles-filter').value.trim().toLowerCase();
    var all = rows();
    var shown = 0;
    all.forEach(function (row) {
      var match = !q || (row.getAttribute('data-name') || '').indexOf(q) !== -1;
      row.hidden = !match;
      if (match) shown += 1;
    });
    $('roles-count').textContent = fmt(t.shown, { shown: shown, total: all.length });
    $('roles-empty').hidden = shown > 0;
  }

  function focusables() {
    return Array.prototype.slice
      .call(dialog.querySelectorAll('button, input, select, a[href], [tabindex]:not([tabindex="-1"])'))
      .filter(function (el) {
        return !el.disabled && !el.hidden && el.offsetParent !== null;
      });
  }

  function openRoles() {
    opener = document.activeElement;
    snapshot = capture();
    dialog.showModal();
    applyFilter();
    $('roles-filter').focus();
    W.scheduleFit();
  }

  function closeRoles(keep) {
    if (!keep) restore(snapshot);
    dialog.close();
    updateSummary();
    W.updateDirty();
    if (opener && opener.focus) opener.focus();
    W.scheduleFit();
  }

  function setupDialog() {
    $('open-roles').addEventListener('click', openRoles);
    $('roles-apply').addEventListener('click', function () {
      closeRoles(true);
    });
    dialog.querySelectorAll('[data-close-dialog]').forEach(function (btn) {
      btn.addEventListener('click', function () {
        closeRoles(false);
      });
    });
    // Esc: the browser fires "cancel"; closing must also put back what the dialog changed.
    dialog.addEventListener('cancel', function (event) {
      event.preventDefault();
      closeRoles(false);
    });
    // Keep Tab inside the dialog (showModal makes the page inert, but Tab could still leave
    // the frame for the CRM's page around it).
    dialog.addEventListener('keydown', function (event) {
      if (event.key !== 'Tab') return;
      var items = focusables();
      if (!items.length) return;
      var first = items[0];
      var last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    });
    // Enter in the filter must not submit the settings form.
    $('roles-filter').addEventListener('keydown', function (event) {
      if (event.key === 'Enter') event.preventDefault();
    });
    $('roles-filter').addEventListener('input', applyFilter);
    rowsBody.addEventListener('change', function (event) {
      if (event.target.tagName === 'SELECT') syncToggle(event.target.closest('tr'));
    });
    rows().forEach(syncToggle);
  }

  /* --- pipelines and stages ------------------------------------------------------------------ */

  function entity() {
    var checked = form.querySelector('input[name="new_client_entity"]:checked');
    var hidden = form.querySelector('input[type="hidden"][name="new_client_entity"]');
    return checked ? checked.value : hidden ? hidden.value : '';
  }

  function option(value, label, selected) {
    var opt = document.createElement('option');
    opt.value = value;
    opt.textContent = label;
    if (selected) opt.selected = true;
    return opt;
  }

  function pipelinesOf(ent) {
    return data.pipelines.filter(function (p) {
      return p.entity === ent;
    });
  }

  // Keeps the current choice even when the CRM no longer has it, marked, so the admin sees it.
  function fillPipelines(keep) {
    var select = $('pipeline-select');
    var current = keep ? select.value : '';
    var list = pipelinesOf(entity());
    if (!keep) {
      var main = list.filter(function (p) {
        return p.is_active && p.is_main;
      })[0];
      var first = main || list.filter(function (p) {
        return p.is_active;
      })[0];
      current = first ? first.id : '';
    }
    select.textContent = '';
    select.appendChild(option('', t.choose, !current));
    var found = false;
    list.forEach(function (p) {
      if (!p.is_active && p.id !== current) return;
      if (p.id === current) found = true;
      select.appendChild(option(p.id, p.is_active ? p.name : p.name + ' (' + t.removed + ')', p.id === current));
    });
    if (current && !found) select.appendChild(option(current, current + ' (' + t.removed + ')', true));
  }

  function fillStages(keep) {
    var select = $('stage-select');
    var current = keep ? select.value : '';
    var pipeId = $('pipeline-select').value;
    var pipe = pipelinesOf(entity()).filter(function (p) {
      return p.id === pipeId;
    })[0];
    var usable = pipe
      ? pipe.stages.filter(function (s) {
          return s.is_active && (s.kind === 'incoming' || s.kind === 'open');
        })
      : [];
    if (!keep && usable.length) current = usable[0].id;
    select.textContent = '';
    select.appendChild(option('', t.choose, !current));
    var found = false;
    (pipe ? pipe.stages : []).forEach(function (s) {
      var ok = s.is_active && (s.kind === 'incoming' || s.kind === 'open');
      if (!ok && s.id !== current) return;
      if (s.id === current) found = true;
      select.appendChild(option(s.id, s.is_active ? s.name : s.name + ' (' + t.removed + ')', s.id === current));
    });
    if (current && !found) select.appendChild(option(current, current + ' (' + t.removed + ')', true));
  }

  // A Bitrix24 portal switched to simple CRM has no leads: the lead choice goes away, and comes
  // back when a later refresh finds the portal in classic mode again.
  function simpleCrm() {
    // Kommo's form carries the entity as a hidden input: only Bitrix24 has the radios.
    var lead = form.querySelector('input[type="radio"][name="new_client_entity"][value="lead"]');
    if (!lead) return;
    var simple = data.crm_mode === 'simple';
    lead.closest('label').hidden = simple;
    if (!simple) return;
    var deal = form.querySelector('input[name="new_client_entity"][value="deal"]');
    if (lead.checked && deal) {
      deal.checked = true;
      fillPipelines(false);
      fillStages(false);
    }
  }

  function setupTargets() {
    form.querySelectorAll('input[name="new_client_entity"]').forEach(function (radio) {
      radio.addEventListener('change', function () {
        fillPipelines(false);
        fillStages(false);
        W.updateDirty();
      });
    });
    $('pipeline-select').addEventListener('change', function () {
      fillStages(false);
      W.updateDirty();
    });
    // The server rendered every pipeline's stages in groups (for pages without script); show only
    // the chosen pipeline's.
    fillStages(true);
  }

  /* --- Refresh CRM data ------------------------------------------------------------------------ */

  function newRow(emp) {
    var row = $('employee-row-template').content.firstElementChild.cloneNode(true);
    var id = String(emp.id);
    row.setAttribute('data-employee-id', id);
    var name = row.querySelector('.emp-name');
    name.id = 'emp-' + id;
    var select = roleSelect(row);
    select.name = 'role-' + id;
    select.setAttribute('aria-labelledby', 'col-role emp-' + id);
    var toggle = newToggle(row);
    toggle.name = 'new-' + id;
    toggle.setAttribute('aria-labelledby', 'col-new emp-' + id);
    row.querySelector('.field-error').setAttribute('data-error-for', 'roles.' + id);
    return row;
  }

  function badge(row, on, cls, text, testid) {
    var existing = row.querySelector('.' + cls);
    if (on && !existing) {
      var b = document.createElement('span');
      b.className = 'badge ' + cls;
      b.textContent = text;
      if (testid) b.setAttribute('data-testid', testid);
      row.querySelector('th').insertBefore(b, row.querySelector('.field-error'));
    } else if (!on && existing) {
      existing.remove();
    }
  }

  // Employees merge into the rows the admin may have changed: their unsaved choices stay.
  function mergeEmployees(list) {
    var byId = {};
    rows().forEach(function (row) {
      byId[row.getAttribute('data-employee-id')] = row;
    });
    list.forEach(function (emp) {
      var row = byId[String(emp.id)] || newRow(emp);
      row.querySelector('.emp-name').textContent = emp.name;
      row.setAttribute('data-name', emp.name.toLowerCase());
      var wasInactive = isInactive(row);
      if (!emp.is_active) {
        // Not assignable any more: back to what is stored for them, and locked.
        if (!wasInactive) {
          roleSelect(row).value = row.getAttribute('data-role') || '';
          newToggle(row).checked = row.getAttribute('data-new') === '1';
        }
        row.setAttribute('data-inactive', '1');
        row.classList.add('inactive');
        roleSelect(row).disabled = true;
      } else {
        row.removeAttribute('data-inactive');
        row.classList.remove('inactive');
        roleSelect(row).disabled = false;
      }
      badge(row, !emp.is_active, 'badge-inactive', t.inactive, 'inactive-badge');
      syncToggle(row);
      rowsBody.appendChild(row); // the server's order (by name); moving keeps the element state
    });
  }

  function showChanges(lines, isError) {
    var box = $('refresh-status');
    box.textContent = '';
    var ul = document.createElement('ul');
    ul.className = 'plain changes' + (isError ? ' error' : '');
    ul.setAttribute('data-testid', isError ? 'refresh-error' : 'refresh-changes');
    lines.forEach(function (line) {
      var li = document.createElement('li');
      li.textContent = line.text;
      li.setAttribute('data-kind', line.kind || '');
      ul.appendChild(li);
    });
    box.appendChild(ul);
    W.scheduleFit();
  }

  // Employees, pipelines and the CRM mode as "Refresh CRM data" (or the first read after the
  // install, static/crm_read.js) answers them, merged into what the admin has not saved yet.
  function applyCrmData(crm) {
    // A page opened before anything was read has no pipeline yet: it gets the main one, as the
    // server would have rendered it, and that is no change of the admin's.
    var fresh = !$('pipeline-select').value && !W.isDirty(form);
    data.pipelines = crm.pipelines;
    data.crm_mode = crm.crm_mode;
    simpleCrm();
    data.employees = crm.employees;
    mergeEmployees(crm.employees);
    fillPipelines(!fresh);
    fillStages(!fresh);
    applyFilter();
    updateSummary();
    if (fresh) W.markClean(form);
    W.updateDirty();
  }

  function refresh(event) {
    event.preventDefault();
    var button = $('refresh-crm');
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    $('refresh-spinner').hidden = false;
    showChanges([{ kind: 'progress', text: t.refreshing }]);
    W.post(data.urls.refresh)
      .then(function (r) {
        if (!r.ok || !r.data.ok) {
          showChanges([{ kind: 'error', text: r.data.message || t.failed }], true);
          return;
        }
        applyCrmData(r.data);
        showChanges(r.data.changes || []);
      })
      .catch(function () {
        showChanges([{ kind: 'error', text: t.failed }], true);
      })
      .then(function () {
        button.disabled = false;
        button.removeAttribute('aria-busy');
        $('refresh-spinner').hidden = true;
      });
  }

  /* --- presets ---------------------------------------------------------------------------------- */
  /* An example is applied to the form only after the admin saw what it changes and agreed; it stays
     unsaved (the "Unsaved changes" mark shows) until Save. */

  var pendingPreset = null;

  function fillPreset(setup) {
    var radio = form.querySelector('input[name="distribution"][value="' + setup.distribution + '"]');
    if (radio) radio.checked = true;
    rows().forEach(function (row) {
      var choice = setup.roles[row.getAttribute('data-employee-id')];
      if (!choice || isInactive(row)) return;
      roleSelect(row).value = choice.role;
      newToggle(row).checked = choice.gets_new_clients;
      syncToggle(row);
    });
    updateSummary();
    W.updateDirty();
    W.status(t.preset_applied, 'ok');
  }

  function showPresetChanges(title, changes) {
    var box = $('preset-dialog');
    $('preset-dialog-title').textContent = fmt(t.preset_title, { name: title });
    var list = box.querySelector('[data-testid="preset-changes"]');
    list.textContent = '';
    changes.roles.forEach(function (move) {
      var li = document.createElement('li');
      li.setAttribute('data-testid', 'preset-move');
      var head = document.createElement('strong');
      head.textContent = move.from + ' \u2192 ' + move.to + ':';
      li.appendChild(head);
      li.appendChild(document.createTextNode(' ' + move.names.join(', ')));
      list.appendChild(li);
    });
    var dist = box.querySelector('[data-testid="preset-distribution"]');
    dist.hidden = !changes.distribution;
    dist.textContent = changes.distribution
      ? t.distribution + ': ' + changes.distribution.from + ' \u2192 ' + changes.distribution.to
      : '';
    box.showModal();
    $('preset-confirm').focus();
    W.scheduleFit();
  }

  function closePreset(apply) {
    var box = $('preset-dialog');
    if (box.open) box.close();
    if (apply && pendingPreset) fillPreset(pendingPreset);
    pendingPreset = null;
    W.scheduleFit();
  }

  function applyPreset(event) {
    event.preventDefault();
    var button = event.currentTarget;
    var key = button.getAttribute('data-preset');
    var title = button.closest('.preset').querySelector('h3').textContent;
    W.post(data.urls.preset.replace('__KEY__', key), new FormData(form))
      .then(function (r) {
        if (!r.ok) {
          W.status(r.data.message || t.failed, 'error');
          return;
        }
        var changes = r.data.changes;
        if (!changes.roles.length && !changes.distribution) {
          W.status(t.preset_unchanged, 'ok');
          return;
        }
        pendingPreset = r.data.setup;
        showPresetChanges(title, changes);
      })
      .catch(function () {
        W.status(t.failed, 'error');
      });
  }

  function setupPresets() {
    form.querySelectorAll('[data-preset]').forEach(function (b) {
      b.addEventListener('click', applyPreset);
    });
    var box = $('preset-dialog');
    $('preset-confirm').addEventListener('click', function () {
      closePreset(true);
    });
    box.querySelectorAll('[data-close-dialog]').forEach(function (b) {
      b.addEventListener('click', function () {
        closePreset(false);
      });
    });
    box.addEventListener('cancel', function (event) {
      event.preventDefault();
      closePreset(false);
    });
  }

  /* --- save and the test message ------------------------------------------------------------------ */

  function openTestDialog(tm) {
    var box = $('test-message-dialog');
    if (!box || !tm) return;
    var ch = tm.channel;
    $('test-message-sent').hidden = !ch;
    $('go-to-chats').hidden = !ch;
    $('test-message-no-channel').hidden = !!ch;
    $('add-channel-link').hidden = !!ch;
    if (ch) {
      box.querySelector('[data-field="channel-name"]').textContent = ch.name;
      box.querySelector('[data-field="channel-address"]').textContent = ch.address;
    }
    if (box.open) box.close();
    box.showModal();
    W.scheduleFit();
  }

  function save(event) {
    event.preventDefault();
    var button = $('save-button');
    button.disabled = true;
    W.clearErrors(form);
    $('open-roles').classList.remove('has-error');
    W.status(t.saving, 'progress');
    W.post(form.action, new FormData(form))
      .then(function (r) {
        if (r.ok && r.data.ok) {
          W.markClean(form);
          rows().forEach(function (row) {
            row.setAttribute('data-role', roleSelect(row).value);
            row.setAttribute('data-new', newToggle(row).checked ? '1' : '0');
          });
          // The page opened with flags on the stored setup (a pipeline or stage gone from the CRM);
          // the save was validated whole, so what they warned about is fixed now.
          form.querySelectorAll('.flag').forEach(function (flag) {
            flag.remove();
          });
          var warnings = (r.data.warnings || []).map(function (w) {
            return w.message;
          });
          W.status(r.data.message, 'ok', warnings, 'warn');
          if (r.data.first_save) openTestDialog(r.data.test_message);
        } else if (r.status === 422) {
          var errors = r.data.errors || {};
          var orphans = W.showErrors(errors);
          // A role problem's slot is in the closed dialog: name it in the status line too (as the
          // page without script lists them), and lead the admin to "Select roles".
          var roleProblems = Object.keys(errors)
            .filter(function (k) {
              return k.indexOf('roles.') === 0;
            })
            .map(function (k) {
              return errors[k];
            });
          if (roleProblems.length) $('open-roles').classList.add('has-error');
          W.status(r.data.message || t.fix, 'error', orphans.concat(roleProblems));
          var first = form.querySelector('[aria-invalid="true"]');
          if (first && !dialog.contains(first)) first.focus();
          else if (roleProblems.length) $('open-roles').focus();
        } else {
          W.status(r.data.message || t.failed, 'error');
        }
      })
      .catch(function () {
        W.status(t.failed, 'error');
      })
      .then(function () {
        button.disabled = false;
      });
  }

  function setupChannelPicker() {
    var select = $('channel-select');
    var current = select.value;
    select.addEventListener('change', function () {
      if (W.isDirty() && !window.confirm(t.unsaved)) {
        select.value = current;
        return;
      }
      W.leaving = true;
      // The session token the page holds now (it may have been renewed since the page was made).
      window.location.href =
        data.urls.tab + '?st=' + encodeURIComponent(W.sessionToken) + '&channel=' + encodeURIComponent(select.value);
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var node = $('settings-data');
    if (!node) return;
    data = JSON.parse(node.textContent);
    t = data.i18n;
    form = $('settings-form');
    dialog = $('roles-dialog');
    rowsBody = $('roles-rows');
    setupDialog();
    setupTargets();
    setupChannelPicker();
    form.addEventListener('submit', save);
    $('refresh-crm').addEventListener('click', refresh);
    setupPresets();
    document.addEventListener('wz:crm-data', function (event) {
      applyCrmData(event.detail);
    });
    W.markClean(form);
    if (data.open_test_dialog) openTestDialog(data.test_message);
    W.scheduleFit();
    // Every control answers from here on (a click before this would have done nothing).
    document.documentElement.setAttribute('data-settings-ready', '');
  });
})();
