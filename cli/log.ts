/**
 * Structured logs: one JSON object per line on stderr, filtered by level.
 *
 * @module
 */

/** Log levels, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;

/** A log level name. */
export type LogLevel = typeof LOG_LEVELS[number];

/** A logger with fields per entry. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A logger writing entries at or above `level` to stderr as JSON lines. */
export function createLogger(level: LogLevel, component: string): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const at = (name: Exclude<LogLevel, "silent">) =>
    LOG_LEVELS.indexOf(name) < threshold
      ? () => {}
      : (message: string, fields?: Record<string, unknown>) => {
        console.error(
          JSON.stringify({
            time: new Date().toISOString(),
            level: name,
            component,
            message,
            ...fields,
          }),
        );
      };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
