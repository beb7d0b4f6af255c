// An S3-compatible server that checks signatures, for the tests of
// presigned URLs: moto's S3 server accepts any URL, so an expired URL or one
// edited to name another object is only refused by a server that verifies
// them. It is @20minutes/s3rver (npm, no command of its own); this starts it
// on loopback with one key pair (its built-in S3RVER key is revoked) and the
// buckets named, created before it listens. Path-style requests only.
// Anonymous requests are not refused: only signed ones are checked.
//
//   NODE_PATH=<dir>/node_modules SIGNING_S3_PID_FILE=<file> \
//     node --openssl-legacy-provider scripts/signing-s3.js \
//     <dataDir> <port> <accessKey> <secretKey> [bucket ...]
//
// NODE_PATH: where `npm install --prefix <dir> @20minutes/s3rver@4.0.4` put
// the module. SIGNING_S3_PID_FILE (optional): written with this process's
// id, for whoever stops it (scripts/services.sh). S3RVER_VERBOSE=1 logs
// every request.
'use strict';

const fs = require('fs');
const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');

const [dir, port, accessKey, secretKey, ...buckets] = process.argv.slice(2);
if (!dir || !port || !accessKey || !secretKey) {
  console.error(
    'usage: node --openssl-legacy-provider signing-s3.js <dataDir> <port> <accessKey> <secretKey> [bucket ...]',
  );
  process.exit(2);
}
if (process.env.SIGNING_S3_PID_FILE) {
  fs.writeFileSync(process.env.SIGNING_S3_PID_FILE, String(process.pid));
}

AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);
fs.mkdirSync(dir, { recursive: true });

new S3rver({
  directory: dir,
  address: '127.0.0.1',
  port: Number(port),
  silent: !process.env.S3RVER_VERBOSE,
  vhostBuckets: false,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
})
  .run()
  .then(({ address, port }) => {
    console.log('signing S3 server listening on %s:%d (buckets: %s)', address, port, buckets.join(' '));
  })
  .catch((err) => {
    console.error('signing S3 server did not start:', err);
    process.exit(1);
  });
