-- Create a session, then revoke it: POST /v1/sessions for a new user, and
-- the next request DELETEs the session it created.
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("API_KEY")
local created = {}
local n = 0
request = function()
  local id = table.remove(created)
  if id then
    return wrk.format("DELETE", "/v1/sessions/" .. id .. "?reason=logout", nil, nil)
  end
  n = n + 1
  return wrk.format("POST", "/v1/sessions", nil, '{"user_id":"cycle' .. n .. '-' .. math.random(1000000000) .. '","ip":"203.0.113.77","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.64 Safari/537.36"}')
end
response = function(status, headers, body)
  if status == 201 then
    local id = body:match('"id":"([^"]+)"')
    if id then table.insert(created, id) end
  end
end
