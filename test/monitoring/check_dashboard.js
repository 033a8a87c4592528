// Checks of deploy/monitoring's Grafana dashboard and alerting rules that
// promtool does not make: the dashboard is JSON Grafana imports (a
// schemaVersion, the datasource, cluster and instance variables, every panel
// on the datasource variable with at least one query), every query and every
// alert names only metrics the agent exports (METRICS, test/monitoring/
// metrics.txt) and selects by cluster and instance. It writes the
// dashboard's queries, with Grafana's variables replaced, as recording rules
// to RULES_OUT, for `promtool check rules` to parse the PromQL.
//
//   node check_dashboard.js METRICS DASHBOARD ALERTS RULES_OUT
//
// Prints one line per check ("[passed] NAME" or "[failed] NAME :: why") and
// exits 1 when any failed.
'use strict';

const fs = require('fs');

const [metricsPath, dashboardPath, alertsPath, rulesOut] = process.argv.slice(2);
if (!rulesOut) {
  console.error('usage: node check_dashboard.js METRICS DASHBOARD ALERTS RULES_OUT');
  process.exit(2);
}

const results = [];
function record(name, problems) {
  results.push({ name, problems });
  console.log(problems.length === 0 ? `[passed] ${name}` : `[failed] ${name} :: ${problems.join('; ')}`);
}

// NAME -> TYPE, and every name a query may use (a histogram's series).
const types = new Map();
for (const line of fs.readFileSync(metricsPath, 'utf8').split('\n')) {
  const words = line.replace(/#.*/, '').trim().split(/\s+/);
  if (words[0]) types.set(words[0], words[1]);
}
const seriesNames = new Set();
for (const [name, type] of types) {
  if (type === 'histogram') ['_bucket', '_sum', '_count'].forEach((s) => seriesNames.add(name + s));
  else seriesNames.add(name);
}

// The metric names a text uses, and those it should not.
function unknownMetrics(text) {
  const unknown = new Set();
  for (const [name] of text.matchAll(/\bcloudha_[A-Za-z0-9_:]+/g)) {
    if (!seriesNames.has(name)) unknown.add(name);
  }
  return [...unknown];
}

let dashboard = null;
{
  const problems = [];
  try {
    dashboard = JSON.parse(fs.readFileSync(dashboardPath, 'utf8'));
  } catch (e) {
    problems.push(`not valid JSON: ${e.message}`);
  }
  record('dashboard_is_json', problems);
}

if (dashboard) {
  // The dashboard itself and its variables.
  {
    const problems = [];
    if (typeof dashboard.schemaVersion !== 'number' || dashboard.schemaVersion < 36) {
      problems.push(`schemaVersion ${dashboard.schemaVersion} (want 36 or later)`);
    }
    for (const key of ['title', 'uid']) {
      if (typeof dashboard[key] !== 'string' || !dashboard[key]) problems.push(`no ${key}`);
    }
    const vars = new Map(((dashboard.templating || {}).list || []).map((v) => [v.name, v]));
    const ds = vars.get('datasource');
    if (!ds || ds.type !== 'datasource' || ds.query !== 'prometheus') {
      problems.push('no variable "datasource" of type datasource and query prometheus');
    }
    for (const name of ['cluster', 'instance']) {
      const v = vars.get(name);
      if (!v || v.type !== 'query') {
        problems.push(`no query variable "${name}"`);
        continue;
      }
      if (!v.datasource || v.datasource.uid !== '${datasource}') {
        problems.push(`variable ${name} does not query \${datasource}`);
      }
      const query = typeof v.query === 'string' ? v.query : (v.query || {}).query;
      const unknown = unknownMetrics(query || '');
      if (!query || unknown.length > 0 || !/^label_values\(/.test(query)) {
        problems.push(`variable ${name}: ${JSON.stringify(query)} is not label_values() of a known metric`);
      }
    }
    record('dashboard_variables', problems);
  }

  // Every panel, rows' collapsed panels included.
  const panels = [];
  for (const p of dashboard.panels || []) {
    panels.push(p);
    for (const inner of p.panels || []) panels.push(inner);
  }
  const queries = [];
  {
    const problems = [];
    const ids = new Set();
    if (panels.filter((p) => p.type !== 'row').length === 0) problems.push('no panels');
    for (const p of panels) {
      const where = `panel ${p.id} "${p.title}"`;
      if (typeof p.id !== 'number' || ids.has(p.id)) problems.push(`${where}: its id is missing or not unique`);
      ids.add(p.id);
      const g = p.gridPos || {};
      if (![g.x, g.y, g.w, g.h].every(Number.isInteger) || g.x + g.w > 24) {
        problems.push(`${where}: gridPos ${JSON.stringify(g)} is not within 24 columns`);
      }
      if (p.type === 'row') continue;
      if (!p.datasource || p.datasource.uid !== '${datasource}') {
        problems.push(`${where}: its datasource is not \${datasource}`);
      }
      const targets = p.targets || [];
      if (targets.length === 0) problems.push(`${where}: no query`);
      const refIds = new Set();
      for (const t of targets) {
        if (typeof t.expr !== 'string' || !t.expr.trim()) problems.push(`${where}: a target without expr`);
        else queries.push({ where, expr: t.expr });
        if (refIds.has(t.refId)) problems.push(`${where}: refId ${t.refId} twice`);
        refIds.add(t.refId);
        if (t.datasource && t.datasource.uid !== '${datasource}') {
          problems.push(`${where}: query ${t.refId} is not on \${datasource}`);
        }
      }
    }
    record('dashboard_panels', problems);
  }

  // Every query names known metrics only, each selected by the variables.
  {
    const problems = [];
    for (const { where, expr } of queries) {
      for (const name of unknownMetrics(expr)) problems.push(`${where}: ${name} is not a metric of the agent`);
      for (const m of expr.matchAll(/\b(cloudha_[A-Za-z0-9_:]+)(\{[^}]*\})?/g)) {
        const selector = m[2] || '';
        if (!selector.includes('cluster="$cluster"') || !selector.includes('instance=~"$instance"')) {
          problems.push(`${where}: ${m[1]} is not selected by cluster="$cluster" and instance=~"$instance"`);
        }
      }
    }
    record('dashboard_metrics', problems);
  }

  // The queries as recording rules, Grafana's variables replaced.
  const rules = ['groups:', '  - name: cloudha_dashboard_queries', '    rules:'];
  queries.forEach(({ where, expr }, i) => {
    const promql = expr
      .replace(/\$__rate_interval|\$\{__rate_interval\}|\$__interval|\$\{__interval\}/g, '1m')
      .replace(/\$__range|\$\{__range\}/g, '1h')
      .replace(/\$\{?cluster\}?/g, 'prod')
      .replace(/\$\{?instance\}?/g, '.*');
    rules.push(`      # ${where.replace(/\n/g, ' ')}`);
    rules.push(`      - record: dashboard_query_${i + 1}`);
    rules.push(`        expr: ${JSON.stringify(promql)}`);
  });
  fs.writeFileSync(rulesOut, rules.join('\n') + '\n');
}

// The alerting rules name known metrics only.
{
  const unknown = unknownMetrics(fs.readFileSync(alertsPath, 'utf8'));
  record('alerts_metrics', unknown.map((name) => `${name} is not a metric of the agent`));
}

const failed = results.filter((r) => r.problems.length > 0).length;
console.log(`monitoring checks: ${results.length - failed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
