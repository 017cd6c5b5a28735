-- POST /v1/tokens/refresh, each request rotating one of many refresh-token
-- chains (file REFRESH_TOKENS, one token per line; more chains than
-- connections): a request takes a chain's current token, its answer puts the
-- successor back, so every request is a real rotation, never a replay.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local pool = {}
for line in io.lines(os.getenv("REFRESH_TOKENS")) do
  if #line > 0 then pool[#pool + 1] = line end
end
request = function()
  local token = table.remove(pool)
  return wrk.format(nil, nil, nil, '{"refresh_token":"' .. token .. '"}')
end
response = function(status, headers, body)
  local next_token = body:match('"refresh_token":"(sdr_[^"]+)"')
  if next_token then pool[#pool + 1] = next_token end
end
