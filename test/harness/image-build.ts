/**
 * The image's /opt/sticky-session as `docker build` makes it, without Docker: the
 * Dockerfile's stages are replayed in a temporary directory, each stage's filesystem root a
 * directory of its own. `COPY` (from the build context or from an earlier stage) and `RUN`
 * (through `sh -c`, in the stage's WORKDIR) run as written; base images are not needed: the
 * stages that only stand for a base image (the node binary) are mapped by dockerfile.ts.
 * So a test can run the plugin server on the exact production install the image carries.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DOCKERFILE, DockerfileError, IMAGE_APP_DIR, logicalLines, REPO_DIR } from './dockerfile.js';

export interface ImageTree {
  /** Temporary directory holding every stage's root; remove it when done. */
  readonly dir: string;
  /** Local directory standing for the final stage's /opt/sticky-session. */
  readonly appDir: string;
  /** Each RUN as run, with its output (for failures). */
  readonly runs: ReadonlyArray<{ readonly stage: string; readonly command: string; readonly ms: number }>;
}

interface Stage {
  readonly name: string;
  readonly root: string;
  workdir: string;
  /** Any COPY or RUN: a stage we built, not a base image. */
  built: boolean;
}

/** Splits instruction arguments on whitespace (COPY sources and destination). */
const words = (s: string): string[] => s.trim().split(/\s+/).filter(Boolean);

export function buildImageTree(opts: { dockerfile?: string; context?: string; log?: (line: string) => void } = {}): ImageTree {
  const context = opts.context ?? REPO_DIR;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'image-'));
  const stages: Stage[] = [];
  const runs: Array<{ stage: string; command: string; ms: number }> = [];
  let stage: Stage | undefined;
  const local = (s: Stage, imagePath: string): string => path.join(s.root, path.posix.resolve(s.workdir, imagePath));

  for (const line of logicalLines(readFileSync(opts.dockerfile ?? DOCKERFILE, 'utf8'))) {
    const m = /^\s*([A-Za-z]+)(?:\s+(.*))?$/s.exec(line);
    if (!m) continue;
    const instruction = m[1]!.toUpperCase();
    const rest = (m[2] ?? '').trim();
    if (instruction === 'FROM') {
      const as = /\s+AS\s+(\S+)\s*$/i.exec(rest)?.[1] ?? `stage-${stages.length}`;
      stage = { name: as, root: path.join(dir, as), workdir: '/', built: false };
      mkdirSync(stage.root);
      stages.push(stage);
      continue;
    }
    if (!stage) continue; // ARG before the first FROM
    if (instruction === 'WORKDIR') {
      stage.workdir = path.posix.resolve(stage.workdir, rest);
      mkdirSync(local(stage, '.'), { recursive: true });
    } else if (instruction === 'COPY') {
      const args = words(rest);
      const from = args[0]?.startsWith('--from=') ? args.shift()!.slice('--from='.length) : undefined;
      if (args.some((a) => a.startsWith('--'))) throw new DockerfileError(`COPY option not replayed: ${rest}`);
      const dest = args.pop()!;
      let sourceRoot: (p: string) => string;
      if (from === undefined) sourceRoot = (p) => path.join(context, p);
      else {
        const src = stages.find((s) => s.name === from);
        if (!src) throw new DockerfileError(`COPY --from=${from}: no such stage`);
        // A base image's file (the node binary): dockerfile.ts maps it onto this machine's.
        if (!src.built) continue;
        sourceRoot = (p) => path.join(src.root, p);
      }
      stage.built = true;
      const toDir = dest.endsWith('/') || args.length > 1;
      for (const source of args) {
        const from = sourceRoot(source);
        const isDir = statSync(from).isDirectory();
        const target = toDir && !isDir ? path.join(local(stage, dest), path.basename(source)) : local(stage, dest);
        mkdirSync(path.dirname(target), { recursive: true });
        cpSync(from, target, { recursive: true, verbatimSymlinks: true });
      }
    } else if (instruction === 'RUN') {
      stage.built = true;
      const t0 = Date.now();
      opts.log?.(`[${stage.name}] RUN ${rest}`);
      const r = spawnSync('/bin/sh', ['-c', rest], {
        cwd: local(stage, '.'),
        // The node that runs the tests stands for the image's /usr/local/bin/node.
        env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}` },
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      });
      runs.push({ stage: stage.name, command: rest, ms: Date.now() - t0 });
      if (r.status !== 0) {
        throw new DockerfileError(`[${stage.name}] RUN ${rest} failed (${r.status ?? r.signal})\n${r.stdout}\n${r.stderr}`.slice(0, 8000));
      }
    }
    // ARG, ENV (read by dockerfile.ts), USER, EXPOSE ...: nothing to build.
  }
  const final = stages.at(-1);
  if (!final) throw new DockerfileError('no FROM in the Dockerfile');
  const appDir = path.join(final.root, IMAGE_APP_DIR);
  if (!existsSync(appDir)) throw new DockerfileError(`the final stage has no ${IMAGE_APP_DIR}`);
  return { dir, appDir, runs };
}
