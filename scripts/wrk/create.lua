-- POST /v1/sessions for 10,000 rotating users (default limit: evicts past 10).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("API_KEY")
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"user_id":"user' .. (n % 10000) .. '","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"}')
end
