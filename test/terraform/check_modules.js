// Offline checks of the Terraform modules under deploy/terraform (no
// terraform binary is available to run `terraform validate`): every .tf
// file parses (HashiCorp's own HCL parser, compiled to WebAssembly, in
// @cdktf/hcl2json); every variable has a type, a description and a
// validation (bools excepted); every var., local., resource, data source
// and module reference resolves within its module or example; provider
// versions and the Terraform version are pinned in versions.tf; the
// variables given to the cloud-init template are exactly the template's.
//
//   node check_modules.js TERRAFORM_DIR TEMPLATE
//
// Prints one line per check ("[passed] NAME" or "[failed] NAME :: why") and
// exits 1 when any failed.
'use strict';

const fs = require('fs');
const path = require('path');
const { parse } = require('@cdktf/hcl2json');

const [terraformDir, templatePath] = process.argv.slice(2);
if (!terraformDir || !templatePath) {
  console.error('usage: node check_modules.js TERRAFORM_DIR TEMPLATE');
  process.exit(2);
}

const results = [];
function record(name, problems) {
  results.push({ name, problems });
  console.log(problems.length === 0 ? `[passed] ${name}` : `[failed] ${name} :: ${problems.join("; ")}`);
}

// Every string inside a parsed value, with the interpolations hcl2json keeps
// as "${...}".
function strings(value, out = []) {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => strings(v, out));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => strings(v, out));
  return out;
}

// The folders holding .tf files: each module and each example.
function tfFolders(dir) {
  const found = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...tfFolders(full));
  }
  if (fs.readdirSync(dir).some((f) => f.endsWith('.tf'))) found.push(dir);
  return found;
}

// Names a folder declares, and the references its expressions make.
function merge(into, parsed) {
  for (const [kind, body] of Object.entries(parsed)) {
    if (kind === 'locals') {
      into.locals = into.locals || {};
      for (const block of body) Object.assign(into.locals, block);
    } else if (Array.isArray(body)) {
      into[kind] = (into[kind] || []).concat(body);
    } else {
      into[kind] = into[kind] || {};
      for (const [k, v] of Object.entries(body)) {
        into[kind][k] = Array.isArray(v) ? v : Object.assign(into[kind][k] || {}, v);
      }
    }
  }
}

const TERRAFORM_FUNCTIONS_AND_KEYWORDS = new Set(['each', 'count', 'path', 'self', 'terraform']);
const RESOURCE_PREFIXES = ['aws_', 'google_', 'azurerm_', 'tls_', 'random_'];

function checkReferences(rel, tf, folder, parsedByFolder) {
  const problems = [];
  // The outputs of each module called from a local folder.
  const moduleOutputs = {};
  for (const [m, blocks] of Object.entries(tf.module || {})) {
    const source = blocks[0].source || '';
    if (!source.startsWith('./') && !source.startsWith('../')) continue;
    const target = parsedByFolder.get(path.resolve(folder, source));
    if (!target) {
      problems.push(`module.${m}: no module at ${source}`);
      continue;
    }
    moduleOutputs[m] = new Set(Object.keys(target.output || {}));
    const inputs = new Set(Object.keys(target.variable || {}));
    for (const arg of Object.keys(blocks[0])) {
      if (!['source', 'providers', 'count', 'for_each', 'depends_on'].includes(arg) && !inputs.has(arg)) {
        problems.push(`module.${m}: ${source} has no variable ${arg}`);
      }
    }
    for (const [name, vb] of Object.entries(target.variable || {})) {
      if (!('default' in vb[0]) && !(name in blocks[0])) problems.push(`module.${m}: required ${name} not given`);
    }
  }
  const vars = new Set(Object.keys(tf.variable || {}));
  const locals = new Set(Object.keys(tf.locals || {}));
  const modules = new Set(Object.keys(tf.module || {}));
  const resources = new Set();
  for (const [type, byName] of Object.entries(tf.resource || {})) {
    for (const name of Object.keys(byName)) resources.add(`${type}.${name}`);
  }
  const datas = new Set();
  for (const [type, byName] of Object.entries(tf.data || {})) {
    for (const name of Object.keys(byName)) datas.add(`${type}.${name}`);
  }
  for (const text of strings(tf)) {
    // Only inside interpolations; quoted strings within them are skipped.
    for (const m of text.matchAll(/\$\{([\s\S]*?)\}(?![^{]*\})/g)) {
      const expr = m[1].replace(/"(?:[^"\\]|\\.)*"/g, '""');
      for (const r of expr.matchAll(/(?<![\w.])(var|local|module|data)\.([A-Za-z_][\w-]*)(?:\.([A-Za-z_][\w-]*))?/g)) {
        const [, kind, a, b] = r;
        if (kind === 'var' && !vars.has(a)) problems.push(`var.${a} is not declared`);
        if (kind === 'local' && !locals.has(a)) problems.push(`local.${a} is not declared`);
        if (kind === 'module' && !modules.has(a)) problems.push(`module.${a} is not declared`);
        if (kind === 'module' && b && moduleOutputs[a] && !moduleOutputs[a].has(b)) {
          problems.push(`module.${a}.${b}: the module has no such output`);
        }
        if (kind === 'data' && !datas.has(`${a}.${b}`)) problems.push(`data.${a}.${b} is not declared`);
      }
      for (const r of expr.matchAll(/(?<![\w.])([a-z][a-z0-9]*_[a-z0-9_]+)\.([A-Za-z_][\w-]*)/g)) {
        const [, type, name] = r;
        if (!RESOURCE_PREFIXES.some((p) => type.startsWith(p))) continue;
        if (TERRAFORM_FUNCTIONS_AND_KEYWORDS.has(type)) continue;
        if (!resources.has(`${type}.${name}`)) problems.push(`${type}.${name} is not declared`);
      }
    }
  }
  return [...new Set(problems)];
}

function checkVariables(tf) {
  const problems = [];
  for (const [name, blocks] of Object.entries(tf.variable || {})) {
    const v = blocks[0];
    if (!v.type) problems.push(`${name} has no type`);
    if (!v.description) problems.push(`${name} has no description`);
    if (v.type !== '${bool}' && !(v.validation && v.validation.length > 0)) {
      problems.push(`${name} has no validation`);
    }
  }
  return problems;
}

function checkVersions(tf) {
  const problems = [];
  const blocks = tf.terraform || [];
  if (!blocks.some((b) => b.required_version)) problems.push('no required_version');
  const providers = {};
  for (const b of blocks) for (const rp of b.required_providers || []) Object.assign(providers, rp);
  if (Object.keys(providers).length === 0) problems.push('no required_providers');
  for (const [name, p] of Object.entries(providers)) {
    if (!p.version) problems.push(`provider ${name} has no version`);
    if (!p.source) problems.push(`provider ${name} has no source`);
  }
  return problems;
}

// templatefile(...) calls of the user data: the map's keys must be the
// template's variables, all of them.
function checkTemplateVars(folder, templateVars) {
  const problems = [];
  let calls = 0;
  for (const file of fs.readdirSync(folder).filter((f) => f.endsWith('.tf'))) {
    const text = fs.readFileSync(path.join(folder, file), 'utf8');
    for (const m of text.matchAll(/templatefile\([^,]*user-data\.yaml\.tftpl"\s*,\s*\{([\s\S]*?)\n\s*\}\)/g)) {
      calls += 1;
      const given = new Set([...m[1].matchAll(/^\s*([a-z][a-z0-9_]*)\s*=/gm)].map((k) => k[1]));
      for (const v of templateVars) if (!given.has(v)) problems.push(`${file}: the template's ${v} is not given`);
      for (const v of given) if (!templateVars.has(v)) problems.push(`${file}: ${v} is not a variable of the template`);
    }
  }
  return { calls, problems };
}

async function main() {
  const template = fs.readFileSync(templatePath, 'utf8');
  const templateVars = new Set([...template.matchAll(/\$\{([a-z][a-z0-9_]*)\}/g)].map((m) => m[1]));
  const folders = tfFolders(terraformDir);
  if (folders.length === 0) record('modules found', [`no .tf files under ${terraformDir}`]);
  const parsedByFolder = new Map();
  const parseProblemsByFolder = new Map();
  for (const folder of folders) {
    const tf = {};
    const parseProblems = [];
    for (const file of fs.readdirSync(folder).filter((f) => f.endsWith('.tf')).sort()) {
      try {
        merge(tf, await parse(file, fs.readFileSync(path.join(folder, file), 'utf8')));
      } catch (e) {
        parseProblems.push(`${file}: ${String(e.message).split('\n')[0]}`);
      }
    }
    parsedByFolder.set(path.resolve(folder), tf);
    parseProblemsByFolder.set(folder, parseProblems);
  }
  for (const folder of folders) {
    const rel = path.relative(terraformDir, folder);
    const tf = parsedByFolder.get(path.resolve(folder));
    const parseProblems = parseProblemsByFolder.get(folder);
    record(`${rel}: every file parses`, parseProblems);
    if (parseProblems.length > 0) continue;
    record(`${rel}: references resolve`, checkReferences(rel, tf, folder, parsedByFolder));
    if (rel.startsWith('modules')) {
      record(`${rel}: variables have a type, a description and a validation`, checkVariables(tf));
      record(`${rel}: versions are pinned`, checkVersions(tf));
      for (const f of ['main.tf', 'variables.tf', 'outputs.tf', 'versions.tf', 'README.md']) {
        if (!fs.existsSync(path.join(folder, f))) record(`${rel}: has ${f}`, [`${f} is missing`]);
      }
      const outputs = Object.entries(tf.output || {});
      record(`${rel}: outputs have a description`,
        outputs.filter(([, b]) => !b[0].description).map(([n]) => `${n} has no description`));
      if (rel.endsWith('-pair')) {
        const { calls, problems } = checkTemplateVars(folder, templateVars);
        record(`${rel}: the user data gets every template variable`,
          calls === 0 ? ['no templatefile() of user-data.yaml.tftpl'] : problems);
      }
    } else {
      record(`${rel}: uses a module`, Object.keys(tf.module || {}).length > 0 ? [] : ['no module block']);
    }
  }
  const failed = results.filter((r) => r.problems.length > 0).length;
  console.log(`terraform checks: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
