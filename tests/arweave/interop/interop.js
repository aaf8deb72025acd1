#!/usr/bin/env node
// Test helper: checks ar-io-mlflow's ANS-104 data items against @dha-team/arbundles,
// the library the Turbo upload service validates uploads with.
//
//   node interop.js verify FILE...        print [{file, id, valid, error}] as JSON
//   node interop.js create SPEC.json DIR  build the items described in SPEC, write
//                                         DIR/<name>.bin, print [{name, file, id, ...}]
//
// SPEC is a JSON list of {name, signer: {ed25519_seed_hex} | {jwk}, data_b64,
// tags: [{name, value}], target_b64url?, anchor_hex?}.
//
// Modules are loaded by path: the package's main entry also loads its file/stream
// helpers, which require axios, a dependency the package does not declare. The modules
// used below are the ones its DataItem.verify path runs.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const BUILD = "@dha-team/arbundles/build/node/cjs/src";
const { DataItem } = require(`${BUILD}/DataItem`);
const { createData } = require(`${BUILD}/ar-data-create`);
const { ArweaveSigner, SolanaSigner } = require(`${BUILD}/signing/chains/index`);

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

function base58(bytes) {
  let number = BigInt("0x" + (Buffer.from(bytes).toString("hex") || "0"));
  let out = "";
  while (number > 0n) {
    out = B58[Number(number % 58n)] + out;
    number /= 58n;
  }
  for (const byte of bytes) {
    if (byte !== 0) break;
    out = "1" + out;
  }
  return out;
}

// Ed25519 public key of a seed with Node's own crypto (independent of both the Python
// side and arbundles): wrap the seed in a fixed PKCS#8 header, export the public JWK.
function ed25519PublicKey(seed) {
  const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const privateKey = crypto.createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  const jwk = crypto.createPublicKey(privateKey).export({ format: "jwk" });
  return Buffer.from(jwk.x, "base64url");
}

function makeSigner(spec) {
  if (spec.ed25519_seed_hex) {
    const seed = Buffer.from(spec.ed25519_seed_hex, "hex");
    return new SolanaSigner(base58(Buffer.concat([seed, ed25519PublicKey(seed)])));
  }
  if (spec.jwk) return new ArweaveSigner(spec.jwk);
  throw new Error("signer needs ed25519_seed_hex or jwk");
}

function describe(item) {
  return {
    id: item.id,
    signature_type: item.signatureType,
    owner: item.owner,
    target: item.target,
    anchor: item.rawAnchor.toString("hex"),
    tags: item.tags,
    data_b64: item.rawData.toString("base64"),
  };
}

async function verify(files) {
  const results = [];
  for (const file of files) {
    const buffer = fs.readFileSync(file);
    const result = { file, id: null, valid: false, error: null };
    try {
      result.id = new DataItem(buffer).id;
      result.valid = await DataItem.verify(buffer);
    } catch (error) {
      result.error = String(error && error.message ? error.message : error);
    }
    results.push(result);
  }
  return results;
}

async function create(specFile, outDir) {
  const specs = JSON.parse(fs.readFileSync(specFile, "utf8"));
  fs.mkdirSync(outDir, { recursive: true });
  const results = [];
  for (const spec of specs) {
    const signer = makeSigner(spec.signer);
    const options = { tags: spec.tags || [] };
    if (spec.target_b64url) options.target = spec.target_b64url;
    if (spec.anchor_hex) options.anchor = Buffer.from(spec.anchor_hex, "hex");
    const item = createData(Buffer.from(spec.data_b64 || "", "base64"), signer, options);
    await item.sign(signer);
    const file = path.join(outDir, `${spec.name}.bin`);
    fs.writeFileSync(file, item.getRaw());
    results.push({ name: spec.name, file, valid: await item.isValid(), ...describe(item) });
  }
  return results;
}

async function main(argv) {
  const [command, ...rest] = argv;
  if (command === "verify") return verify(rest);
  if (command === "create" && rest.length === 2) return create(rest[0], rest[1]);
  throw new Error("usage: interop.js verify FILE... | interop.js create SPEC.json DIR");
}

main(process.argv.slice(2)).then(
  (result) => process.stdout.write(JSON.stringify(result) + "\n"),
  (error) => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(2);
  },
);
