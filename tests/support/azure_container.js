// Creates a blob container on an Azurite server and, when given a directory, uploads every file
// under it (keys relative to it, under a prefix). object_store cannot create containers, and
// signing requests by hand would need an HMAC in the tests. The key is Azurite's public,
// documented development key.
// Usage: node azure_container.js PORT CONTAINER [DIR PREFIX]
const fs = require("fs");
const path = require("path");
const { BlobServiceClient } = require("@azure/storage-blob");
const [port, container, dir, prefix] = process.argv.slice(2);
const conn = `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:${port}/devstoreaccount1;`;

function files(d) {
  return fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(d, e.name)) : [path.join(d, e.name)]);
}

async function main() {
  const client = BlobServiceClient.fromConnectionString(conn).getContainerClient(container);
  await client.createIfNotExists();
  if (dir) {
    for (const f of files(dir)) {
      const key = `${prefix}/${path.relative(dir, f).split(path.sep).join("/")}`;
      await client.getBlockBlobClient(key).uploadFile(f);
    }
  }
}

main().catch((e) => { console.error(e.message); process.exit(1); });
