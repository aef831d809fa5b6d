/** `node build/integration/pull/run-pull.js ARGS…`: the pull command as its own process, until main.ts wires it in. */
import { pullCommand } from '../../snapshotter/src/cli/pull-command.js';

process.exitCode = await pullCommand(process.argv.slice(2));
