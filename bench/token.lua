-- wrk script: POST $BENCH_PATH (default /oauth/token) with the form body
-- grant_type=client_credentials and the header Authorization: $BENCH_AUTH.
-- token.sh sends the token requests (client_secret_basic) and the baseline
-- (/auth/check with a Bearer API key) through this same script — same method, body and
-- header count — so the load generator does the same work for both.
local path = os.getenv("BENCH_PATH") or "/oauth/token"
local auth = assert(os.getenv("BENCH_AUTH"), "set BENCH_AUTH to an Authorization header value")
local body = "grant_type=client_credentials"
local req = wrk.format("POST", path, {
  ["Authorization"] = auth,
  ["Content-Type"] = "application/x-www-form-urlencoded",
}, body)
request = function()
  return req
end
