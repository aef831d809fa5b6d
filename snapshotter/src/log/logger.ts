import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** The log levels accepted by `--log-level` and `log_level`. */
export const LOG_LEVELS: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/**
 * Create the process logger: JSON lines on stderr with stable field names
 * (`layer`, `diff_id`, `key`, `source`, `bytes`, `duration_ms`).
 */
export function createLogger(level: LevelWithSilent = 'info', destination: number = 2): Logger {
  return pino(
    {
      level,
      base: { component: 'clip-snapshotter' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: destination, sync: true }),
  );
}

/** A logger that drops everything; for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

let shared: Logger | undefined;

/** One silent logger for every component that was given none (saves a pino instance each). */
export function sharedSilentLogger(): Logger {
  shared ??= silentLogger();
  return shared;
}
