#!/usr/bin/env node
// Test helper: cross-checks Turbo receipts against arweave-js, the library the Turbo
// upload service signs receipts with (deepHash + crypto.sign with saltLength 0).
//
//   node receipt_interop.js verify   stdin: receipt JSON      -> prints true|false
//   node receipt_interop.js sign     stdin: {jwk, id, version, deadlineHeight, timestamp}
//                                    -> prints {signature, public} (base64url)
//
// Modules are resolved from tests/arweave/interop/node_modules (arweave is a
// dependency of @dha-team/arbundles installed there).
"use strict";

const path = require("path");
const ROOT = path.join(__dirname, "interop", "node_modules", "arweave", "node", "lib");
const deepHash = require(path.join(ROOT, "deepHash")).default;
const Driver = require(path.join(ROOT, "crypto", "node-driver")).default;

function b64url(buffer) {
  return Buffer.from(buffer).toString("base64url");
}

function message(fields) {
  return deepHash([
    Buffer.from("Bundlr"),
    Buffer.from(fields.version),
    Buffer.from(fields.id),
    Buffer.from(String(fields.deadlineHeight)),
    Buffer.from(String(fields.timestamp)),
  ]);
}

async function main() {
  const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const driver = new Driver();
  const hash = await message(input.receipt || input);
  if (process.argv[2] === "verify") {
    const receipt = input.receipt;
    const ok = await driver.verify(receipt.public, hash, Buffer.from(receipt.signature, "base64url"));
    process.stdout.write(JSON.stringify(ok));
  } else {
    const signature = await driver.sign(input.jwk, hash, { saltLength: 0 });
    process.stdout.write(JSON.stringify({ signature: b64url(signature), public: input.jwk.n }));
  }
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
