import { pino, type Logger } from 'pino';

/** The levels a decision log may be set to (the schema's `log_level`). */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * pino JSON on stderr (fd 2). kong-pdk reads plugin info from the server's stdout, so a
 * single stray stdout line would break Kong's start; Kong copies stderr into its error log.
 * Level: STICKY_SESSION_LOG_LEVEL (default info).
 */
export const log: Logger = pino(
  {
    name: 'sticky-session',
    level: process.env.STICKY_SESSION_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
  },
  pino.destination({ fd: 2, sync: true }),
);
