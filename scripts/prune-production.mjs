#!/usr/bin/env node
/**
 * Removes from a production install (`npm ci --omit=dev`, or `npm prune --omit=dev` after a
 * full one) what the plugin server never loads: the TypeScript compiler and type
 * declarations. kong-pdk depends on ts-node and typescript 4, npm adds typescript 5 as
 * ts-node's peer, and @types/* come along: about 90 MB. kong-pdk's lib/mod.js still calls
 * `require('ts-node').register()` as it loads, so ts-node is replaced by a stand-in whose
 * register() does nothing (what dist/skip-ts-node.cjs does in memory).
 *
 * A package is removed only when nothing the server can load depends on it, as read from
 * package-lock.json: a dependency update cannot make this delete a package in use.
 *
 *   node scripts/prune-production.mjs [install-dir]     (default: the current directory)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Packages no code of the plugin server requires at run time. */
const neverLoaded = (name) => name === 'ts-node' || name === 'typescript' || name.startsWith('@types/');

const dir = path.resolve(process.argv[2] ?? '.');
const lock = JSON.parse(readFileSync(path.join(dir, 'package-lock.json'), 'utf8'));
const packages = lock.packages ?? {};
const installed = (key) => key in packages && existsSync(path.join(dir, key));

/** Node's lookup from the package at `from`: its own node_modules, then each parent's. */
function resolve(from, name) {
  for (let base = from; ; ) {
    const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (installed(candidate)) return candidate;
    if (!base) return undefined;
    base = base.replace(/\/?node_modules\/(?:@[^/]+\/)?[^/]+$/, '');
  }
}

const reachable = new Set(['']);
const queue = [''];
while (queue.length > 0) {
  const key = queue.pop();
  const entry = packages[key] ?? {};
  const names = [entry.dependencies, entry.optionalDependencies, entry.peerDependencies].flatMap((d) => Object.keys(d ?? {}));
  for (const name of names) {
    if (neverLoaded(name)) continue;
    const dep = resolve(key, name);
    if (dep !== undefined && !reachable.has(dep)) {
      reachable.add(dep);
      queue.push(dep);
    }
  }
}

let removed = 0;
for (const key of Object.keys(packages)) {
  if (key === '' || reachable.has(key) || !installed(key)) continue;
  rmSync(path.join(dir, key), { recursive: true, force: true });
  removed++;
}

// npm's record of the tree as it was.
rmSync(path.join(dir, 'node_modules', '.package-lock.json'), { force: true });

/** Links to removed packages' binaries; scope, .bin and node_modules directories left empty (npm prune leaves some too). */
function tidy(p) {
  for (const e of readdirSync(p, { withFileTypes: true })) {
    const child = path.join(p, e.name);
    if (e.isSymbolicLink()) {
      if (!existsSync(child)) rmSync(child);
    } else if (e.isDirectory()) tidy(child);
  }
  const name = path.basename(p);
  if ((name.startsWith('@') || name === '.bin' || name === 'node_modules') && readdirSync(p).length === 0) rmSync(p, { recursive: true });
}
tidy(path.join(dir, 'node_modules'));

if (existsSync(path.join(dir, 'node_modules', 'kong-pdk'))) {
  const standIn = path.join(dir, 'node_modules', 'ts-node');
  mkdirSync(standIn, { recursive: true });
  writeFileSync(
    path.join(standIn, 'package.json'),
    `${JSON.stringify({ name: 'ts-node', version: '0.0.0-stand-in', private: true, description: 'Stand-in for kong-pdk: register() does nothing (scripts/prune-production.mjs)', main: 'index.js' }, null, 2)}\n`,
  );
  writeFileSync(path.join(standIn, 'index.js'), "'use strict';\n// kong-pdk calls register() to load TypeScript plugins; ours is compiled JavaScript.\nexports.register = () => undefined;\n");
}
process.stderr.write(`prune-production: removed ${removed} packages the plugin server never loads (TypeScript, ts-node, @types)\n`);
