// A webhook receiver that is not ours: it checks X-Webhook-Signature with Node's crypto,
// exactly as seed 003's snippet does, and records what it received.
//   node webhook_receiver.mjs <port> <secret>
// POST /anything -> 200 if the signature verifies, 401 if not; GET /_received -> JSON list.
import crypto from "crypto";
import http from "http";

// Seed 003, "Verification" (types removed).
function verifyWebhook(body, signature, secret) {
  const expected = crypto
    .createHmac("sha256", secret)
    .update(body)
    .digest("hex");
  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expected)
  );
}

const [port, secret] = process.argv.slice(2);
const received = [];

http
  .createServer((req, res) => {
    if (req.method === "GET" && req.url === "/_received") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(received));
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const signature = req.headers["x-webhook-signature"] || "";
      let verified = false;
      try {
        verified = verifyWebhook(body, signature, secret);
      } catch (e) {
        verified = false; // timingSafeEqual throws when the lengths differ
      }
      received.push({
        verified,
        id: req.headers["x-webhook-id"],
        timestamp: req.headers["x-webhook-timestamp"],
        event: req.headers["x-webhook-event"],
        body: verified ? JSON.parse(body) : null,
      });
      res.writeHead(verified ? 200 : 401);
      res.end();
    });
  })
  .listen(Number(port), "127.0.0.1", () => console.log(`listening ${port}`));
