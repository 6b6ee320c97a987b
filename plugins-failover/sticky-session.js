// kong-pdk entry point with change on failure: the same plugin plus a log phase (Kong then
// sends a log event for every request). Use instead of plugins/ only when
// change_on_failure is on somewhere: see README, "Change on failure".
export { StickySessionWithFailover as Plugin } from '../dist/handler.js';
export { Schema } from '../dist/schema.js';
export { Version, Priority } from '../dist/meta.js';
