/**
 * Gateway API durations (GEP-2257): `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, components summed in any
 * order (`10s30m1h` is 1h30m10s). Returns milliseconds, or undefined when not a valid duration.
 */
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const COMPONENT = /([0-9]{1,5})(ms|h|m|s)/g;
const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };

export function parseGatewayDuration(text: unknown): number | undefined {
  if (typeof text !== 'string' || !DURATION.test(text)) return undefined;
  let ms = 0;
  for (const [, value, unit] of text.matchAll(COMPONENT)) ms += Number(value) * (UNIT_MS[unit as string] as number);
  return ms;
}
