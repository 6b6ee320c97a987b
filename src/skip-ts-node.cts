/**
 * The path Kong's start_cmd and query_cmd name (`--require .../dist/skip-ts-node.cjs`, in
 * kong.conf, the Helm values, the Deployment patch and the image): kept where deployed
 * configs expect it. What it does lives in kong/skip-ts-node.cts.
 */
require('./kong/skip-ts-node.cjs');
