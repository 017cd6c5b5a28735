-- POST /v1/sessions/introspect with one live token (touch on, coalesced).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("API_KEY")
wrk.body = '{"token":"' .. os.getenv("TOKEN") .. '"}'
