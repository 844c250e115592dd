-- wrk script: GET $BENCH_PATH (default /auth/check) with a Bearer key, rotating over
-- the keys in $KEYS_FILE (one per line), so the run exercises the grant cache with
-- many entries. The baseline (/health) goes through this same script with the same
-- headers, so the load generator does the same work for both routes.
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do
  keys[#keys + 1] = line
end
local path = os.getenv("BENCH_PATH") or "/auth/check"
local i = 0
request = function()
  i = i % #keys + 1
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. keys[i] })
end
