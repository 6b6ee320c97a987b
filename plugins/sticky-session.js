// kong-pdk entry point. Kong names the plugin after this file: sticky-session.
export { StickySessionPlugin as Plugin } from '../dist/plugin.js';
export { Schema } from '../dist/schema.js';
export { Version, Priority } from '../dist/meta.js';
