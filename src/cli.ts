#!/usr/bin/env node
/**
 * sticky-session command line: `sticky-session status [--url ...] [--json]` and
 * `sticky-session convert [-f FILE]...`. An operator's tool that runs on its own, never inside
 * the plugin server.
 */
import { text } from 'node:stream/consumers';
import { runConvert } from './cli/convert.js';
import { runCli } from './cli/status.js';

const io = {
  out: (t: string) => process.stdout.write(t),
  err: (t: string) => process.stderr.write(t),
};
const argv = process.argv.slice(2);
process.exitCode = argv[0] === 'convert' ? await runConvert(argv.slice(1), { ...io, stdin: () => text(process.stdin) }) : await runCli(argv, process.env, io);
