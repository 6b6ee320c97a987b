# Kong Gateway (open source, 3.9 line) with the sticky-session plugin served by
# kong-js-pluginserver on Node.js 24 LTS.
#
#   docker build -t sticky-session-kong .
#
# The KONG_PLUGINSERVER_* values below are also read by the test harness
# (test/harness/dockerfile.ts), which runs these exact commands against the real
# plugin server, so what is tested is what the image runs.

ARG NODE_IMAGE=node:24-bookworm-slim
ARG KONG_IMAGE=kong:3.9

FROM ${NODE_IMAGE} AS build
WORKDIR /build
COPY package.json package-lock.json ./
# The `node` devDependency only exists so that npm scripts run on Node 24 on machines
# that have an older Node; the image already has Node 24.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts/prune-production.mjs ./scripts/
# The production install, then without what the plugin server never loads: kong-pdk's ts-node
# and typescript (and typescript 5, ts-node's peer) and @types: 190 MB -> 92 MB of node_modules.
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && node scripts/prune-production.mjs

FROM ${NODE_IMAGE} AS node

FROM ${KONG_IMAGE}
USER root
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /opt/sticky-session
COPY --from=build /build/package.json ./package.json
COPY --from=build /build/node_modules ./node_modules
COPY --from=build /build/dist ./dist
COPY plugins ./plugins
COPY plugins-failover ./plugins-failover

# Kong runs start_cmd through `sh -c exec ...` with a limited PATH: absolute paths only.
# Logs of the plugin server (pino JSON on stderr) land in Kong's error log at nginx level
# info: with Kong's default log_level (notice) they would all be dropped, errors included.
# nginx workers (which start the plugin server) keep only the environment variables declared
# with `env`: KONG_NGINX_MAIN_ENV declares the ones the plugin reads. Setting your own
# KONG_NGINX_MAIN_ENV replaces this list: keep these in it.
# Memory: skip-ts-node.cjs keeps kong-pdk from loading the TypeScript compiler (~50 MB) where
# ts-node is installed (here only prune-production.mjs's stand-in is); 8 MB semi-spaces and a
# 20% heap growing factor keep V8's heap near its live size.
ENV KONG_PLUGINS=bundled,sticky-session \
    KONG_NGINX_MAIN_ENV="KUBERNETES_SERVICE_HOST; env KUBERNETES_SERVICE_PORT; env KUBECONFIG; env STICKY_SESSION_LOG_LEVEL; env STICKY_SESSION_METRICS_PORT; env STICKY_SESSION_METRICS_ADDRESS; env STICKY_SESSION_WATCH_SCOPE" \
    KONG_PLUGINSERVER_NAMES=sticky-session \
    KONG_PLUGINSERVER_STICKY_SESSION_SOCKET=/tmp/sticky-session.sock \
    KONG_PLUGINSERVER_STICKY_SESSION_START_CMD="/usr/local/bin/node --max-semi-space-size=8 --heap-growing-percent=20 --require /opt/sticky-session/dist/skip-ts-node.cjs /opt/sticky-session/node_modules/kong-pdk/bin/kong-js-pluginserver --plugins-directory /opt/sticky-session/plugins --kong-prefix /tmp --sock-name sticky-session.sock" \
    KONG_PLUGINSERVER_STICKY_SESSION_QUERY_CMD="/usr/local/bin/node --require /opt/sticky-session/dist/skip-ts-node.cjs /opt/sticky-session/node_modules/kong-pdk/bin/kong-js-pluginserver --plugins-directory /opt/sticky-session/plugins --dump-all-plugins" \
    NODE_ENV=production \
    KONG_LOG_LEVEL=info

WORKDIR /
USER kong
