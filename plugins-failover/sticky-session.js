// kong-pdk entry point with change on failure: the same plugin (same name, so KongPlugin
// resources need no change) plus a log phase (Kong then sends a log event for every request)
// and the change_on_failure fields in its schema. Use instead of plugins/ only when
// change_on_failure is on somewhere: see README, "Change on failure".
export { StickySessionFailoverPlugin as Plugin } from '../dist/kong/plugin.js';
export { FailoverSchema as Schema } from '../dist/config/schema.js';
export { Version, Priority } from '../dist/kong/meta.js';
