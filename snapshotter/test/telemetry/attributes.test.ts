// The stable semantic-convention names telemetry/attributes.ts writes out (so that no process loads
// the whole conventions package) are the package's own.
import t from 'tap';
import * as semconv from '@opentelemetry/semantic-conventions';
import * as ours from '../../src/telemetry/attributes.js';

t.test('the stable names match @opentelemetry/semantic-conventions', async (t) => {
  const names = ['ATTR_ERROR_TYPE', 'ATTR_HTTP_REQUEST_METHOD', 'ATTR_HTTP_RESPONSE_STATUS_CODE', 'ATTR_SERVER_ADDRESS', 'ATTR_SERVER_PORT', 'ATTR_SERVICE_NAME', 'ATTR_SERVICE_VERSION', 'ATTR_URL_FULL'] as const;
  for (const n of names) t.equal(ours[n], semconv[n], n);
});
