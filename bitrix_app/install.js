/*
 * The installer page's script (reference bitrix24.md §1.2): bind the placements and the events,
 * then BX24.installFinish(). Until installFinish, Bitrix24 hides our widgets and delivers no
 * events, and it shows this page again on every open. Everything goes in one BX24.callBatch
 * (one REST request); a repeated install answers "Handler already binded", which is success.
 */
(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('wz-install-config').textContent);
  var status = document.getElementById('install-status');
  var steps = document.getElementById('install-steps');

  function alreadyBound(err) {
    var text = String(err) + ' ' + ((err && err.ex && err.ex.error_description) || '');
    return /already binded/i.test(text);
  }

  function show(label, ok, note) {
    var li = document.createElement('li');
    li.textContent = (ok ? '✓ ' : '✗ ') + label + (note ? ' — ' + note : '');
    li.className = ok ? 'ok' : 'failed';
    steps.appendChild(li);
  }

  BX24.init(function () {
    var calls = {};
    var labels = {};
    config.placements.forEach(function (p, i) {
      calls['p' + i] = ['placement.bind', p];
      labels['p' + i] = p.PLACEMENT;
    });
    config.events.forEach(function (e, i) {
      calls['e' + i] = ['event.bind', e];
      labels['e' + i] = e.event;
    });
    BX24.callBatch(calls, function (results) {
      var failed = [];
      Object.keys(calls).forEach(function (key) {
        var err = results[key].error();
        var ok = !err || alreadyBound(err);
        show(labels[key], ok, err && !ok ? String(err) : '');
        if (!ok) { failed.push(labels[key] + ': ' + String(err)); }
      });
      if (failed.length) {
        status.textContent = config.texts.failed + ' ' + failed.join('; ');
        status.setAttribute('data-state', 'failed');
        return;
      }
      status.textContent = config.texts.done;
      status.setAttribute('data-state', 'done');
      BX24.installFinish();
    }, false);
  });
}());
