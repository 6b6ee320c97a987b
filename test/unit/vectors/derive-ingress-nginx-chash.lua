-- Derives the balanced-mode vectors of test/unit/legacy-ingress-nginx.test.ts by running
-- lua-resty-balancer's own consistent hash (lib/resty/chash.lua over chash.c), the ring
-- ingress-nginx's balancer/sticky_balanced.lua builds. Nothing of ours runs here.
--
--   git clone https://github.com/openresty/lua-resty-balancer /tmp/lrb
--   git -C /tmp/lrb checkout 1cd4363c0a239afe4765ec607dcfbbb4e5900eea
--   make -C /tmp/lrb                     # builds librestychash.so from chash.c
--   apt-get install -y luajit            # LuaJIT 2.1 (chash.lua needs its ffi and bit)
--   LRB=/tmp/lrb luajit test/unit/vectors/derive-ingress-nginx-chash.lua \
--     > test/unit/vectors/ingress-nginx-chash.json
--
-- The one stand-in: chash.lua calls ngx.crc32_short, which outside nginx does not exist.
-- nginx defines it (src/core/ngx_crc32.h) as the IEEE CRC-32: init 0xffffffff, reflected
-- polynomial 0xedb88320, final xor 0xffffffff, which is zlib's crc32(); checked below against
-- the CRC-32 check value and, by the first case, against chash.t's own published test.
local ffi = require "ffi"
ffi.cdef[[ unsigned long crc32(unsigned long crc, const char *buf, unsigned int len); ]]
local z = ffi.load("z")
ngx = { crc32_short = function(s) s = tostring(s); return tonumber(z.crc32(0, s, #s)) end }
assert(ngx.crc32_short("123456789") == 0xCBF43926)

local lrb = assert(os.getenv("LRB"), "set LRB to the lua-resty-balancer checkout")
package.path = lrb .. "/lib/?.lua;" .. package.path
package.cpath = lrb .. "/?.so;" .. package.cpath
local chash = require "resty.chash"

local function q(s) return '"' .. s .. '"' end
local out = {}

-- 1. lua-resty-balancer t/chash.t TEST 1, whose expected output upstream publishes:
--    server1: 77075, server2: 14743, server3: 8182, points number: 2080.
do
  local ring = chash:new({ server1 = 10, server2 = 2, server3 = 1 })
  local res = {}
  for i = 1, 100000 do local id = ring:find(i); res[id] = (res[id] or 0) + 1 end
  out[#out + 1] = string.format('"upstreamTest1": {"server1": %d, "server2": %d, "server3": %d, "points": %d}',
    res.server1, res.server2, res.server3, ring.npoints)
end

-- 2. Rings as ingress-nginx builds them (util.get_nodes: "address:port" -> weight 1; IPv6
--    addresses in brackets), each with the node every key lands on.
--    Keys: the form sticky_balanced.lua gives them, "<ngx.now() + i>.<worker pid>.<random>",
--    plus a few plain strings.
local keys = {}
for i = 1, 300 do
  keys[#keys + 1] = string.format("%d.%03d.%d.%d", 1733300000 + i * 37, (i * 7919) % 1000, 4000 + i % 50, (i * 104729) % 999999)
end
for _, k in ipairs({ "a", "b", "route", "0", "" }) do keys[#keys + 1] = k end

local rings = {
  { name = "three", nodes = { "192.0.2.10:8080", "192.0.2.11:8080", "192.0.2.12:8080" } },
  -- the first pod change: 192.0.2.11 leaves (terminating, so not Ready)
  { name = "three-minus-11", nodes = { "192.0.2.10:8080", "192.0.2.12:8080" } },
  -- scale-out: 192.0.2.13 joins
  { name = "three-plus-13", nodes = { "192.0.2.10:8080", "192.0.2.11:8080", "192.0.2.12:8080", "192.0.2.13:8080" } },
  { name = "mixed", nodes = { "10.1.0.5:80", "10.1.3.17:80", "[2001:db8::7]:80", "[fd00::1:2]:80", "10.1.7.200:80" } },
}
local ringsOut = {}
for _, r in ipairs(rings) do
  local nodes = {}
  for _, n in ipairs(r.nodes) do nodes[n] = 1 end
  local ring = chash:new(nodes)
  local lines = {}
  for _, k in ipairs(keys) do lines[#lines + 1] = "      " .. q(k) .. ": " .. q((ring:find(k))) end
  local nodeList = {}
  for _, n in ipairs(r.nodes) do nodeList[#nodeList + 1] = q(n) end
  ringsOut[#ringsOut + 1] = string.format('    %s: {\n    "nodes": [%s],\n    "points": %d,\n    "keys": {\n%s\n    }}',
    q(r.name), table.concat(nodeList, ", "), ring.npoints, table.concat(lines, ",\n"))
end
out[#out + 1] = '"rings": {\n' .. table.concat(ringsOut, ",\n") .. "\n  }"

print("{\n  " .. '"derivedBy": "test/unit/vectors/derive-ingress-nginx-chash.lua on openresty/lua-resty-balancer 1cd4363c0a239afe4765ec607dcfbbb4e5900eea",\n  ' .. table.concat(out, ",\n  ") .. "\n}")
