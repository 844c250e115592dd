-- wrk script: GET /auth/check with keys that are NOT stored, read from $WRONG_FILE.
-- $WRONG_MODE: "distinct" (every request a new well-formed key), "repeat" (the first
-- 100 keys over and over), "typo" (one character changed: the checksum fails).
-- Stops after $WRONG_REQUESTS responses (one thread).
local keys = {}
for line in io.lines(os.getenv("WRONG_FILE")) do
  keys[#keys + 1] = line
end
local mode = os.getenv("WRONG_MODE") or "distinct"
local limit = tonumber(os.getenv("WRONG_REQUESTS") or "10000")
if mode == "repeat" then
  local first = {}
  for n = 1, 100 do first[n] = keys[n] end
  keys = first
elseif mode == "typo" then
  for n = 1, #keys do
    local k = keys[n]
    local c = k:sub(20, 20) == "A" and "B" or "A"
    keys[n] = k:sub(1, 19) .. c .. k:sub(21)
  end
end
local i, done = 0, 0
request = function()
  i = i % #keys + 1
  return wrk.format("GET", "/auth/check", { ["Authorization"] = "Bearer " .. keys[i] })
end
response = function(status)
  done = done + 1
  if done >= limit then
    wrk.thread:stop()
  end
end
