import { pino, type Logger } from 'pino';

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
