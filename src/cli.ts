#!/usr/bin/env node
/**
 * sticky-session command line: `sticky-session status [--url ...] [--json]`.
 * An operator's tool that runs on its own, never inside the plugin server.
 */
import { runCli } from './observability/status-cli.js';

process.exitCode = await runCli(process.argv.slice(2), process.env, {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});
