// kong-pdk entry point. Kong names the plugin after this file: sticky-session.
export { StickySession as Plugin } from '../dist/handler.js';
export { Schema } from '../dist/schema.js';
export { Version, Priority } from '../dist/meta.js';
