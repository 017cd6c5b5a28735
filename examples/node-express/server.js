// Run the example: SESSIOND_URL=http://127.0.0.1:7420 SESSIOND_API_KEY=... node server.js
import { createApp } from "./app.js";

const port = Number(process.env.PORT ?? 3000);
createApp().listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${port}`);
});
