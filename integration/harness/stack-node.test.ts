/** stack-node's checks that need no stack: a bench pull that loaded without its bundle is refused. */
import t from 'tap';
import { UNBUNDLED_PULL_WARNING } from '../../snapshotter/src/cli/pull-bundle.js';
import { refuseUnbundledPull } from './stack-node.js';

t.test('a pull that loaded module by module is refused, naming make build; a bundled one passes', async (t) => {
  t.throws(() => refuseUnbundledPull(`${UNBUNDLED_PULL_WARNING}: no bundle (run \`make build\`)\n`), /make build/);
  t.throws(() => refuseUnbundledPull(`some other line\n${UNBUNDLED_PULL_WARNING}: the bundle is older than the compiled sources\n`), /module loading/);
  t.doesNotThrow(() => refuseUnbundledPull(''));
  t.doesNotThrow(() => refuseUnbundledPull('a warning of its own about something else\n'));
});
