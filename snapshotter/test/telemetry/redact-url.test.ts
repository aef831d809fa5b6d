import t from 'tap';
import { redactUserinfo } from '../../src/telemetry/redact-url.js';

t.test('the tracing endpoint is logged without its userinfo', async (t) => {
  t.equal(redactUserinfo('https://user:s3cret@collector.example:4318/v1/traces'), 'https://collector.example:4318/v1/traces');
  t.equal(redactUserinfo('http://token@127.0.0.1:4318'), 'http://127.0.0.1:4318/');
  t.equal(redactUserinfo('http://127.0.0.1:4318/v1/traces'), 'http://127.0.0.1:4318/v1/traces', 'no userinfo: unchanged');
  t.equal(redactUserinfo('not a url with a:secret@inside'), '<redacted>');
  t.equal(redactUserinfo(undefined), undefined);
});
