/**
 * systemd's readiness protocol for the FUSE server (`Type=notify`, `NotifyAccess=all` in
 * plugin-config/clip-snapshotter-fuse.service). With `$NOTIFY_SOCKET` set, the server sends
 * `MAINPID=<own pid>` and `READY=1` once it serves — a successor that took over sends them before
 * the old server exits, so systemd follows the unit's main process to the new build instead of
 * seeing it exit — and `STOPPING=1` when a signal stops it. Without `$NOTIFY_SOCKET` nothing is sent.
 *
 * `WATCHDOG=1` is not sent, and the shipped unit sets no `WatchdogSec=`: systemd hands
 * `$WATCHDOG_USEC` to the process it starts, not to a successor started by `ExecReload=`, so the
 * pings would stop after the first upgrade and the watchdog would kill the server — and with it
 * every running container's reads. The daemon's calls to the FUSE server carry deadlines instead.
 */
import { messageOf, unavailable } from '../errors/index.js';
import { fusedev } from '../fuse/kernel/addon.js';
import type { Logger } from '../log/index.js';

/** Sends one notification datagram (the addon's sdNotify; a fake in unit tests). */
export type NotifySend = (socketPath: string, message: string) => void;

/** What the FUSE server tells its service manager. */
export interface ServiceNotifier {
  /** True when a service manager listens (`$NOTIFY_SOCKET` set). */
  readonly enabled: boolean;
  /** This process serves: it is the unit's main process now, and the unit is ready. */
  ready(status: string): void;
  /** A signal stops this process (not a hand-over: the unit goes on with the successor). */
  stopping(): void;
}

/**
 * The notifier for `env` (`NOTIFY_SOCKET`: an absolute path or `@abstract` name). A failed send
 * is logged as CLIP_SERVICE_NOTIFY_FAILED and not thrown: the process serves containers either way,
 * and exiting would end their reads.
 */
export function serviceNotifier(log: Logger, env: NodeJS.ProcessEnv = process.env, send: NotifySend = (p, m) => fusedev().sdNotify(p, m), pid = process.pid): ServiceNotifier {
  const socketPath = env.NOTIFY_SOCKET;
  if (socketPath === undefined || socketPath === '') return { enabled: false, ready: () => undefined, stopping: () => undefined };
  const notify = (message: string): void => {
    try {
      if (!socketPath.startsWith('/') && !socketPath.startsWith('@')) throw new Error('NOTIFY_SOCKET is neither an absolute path nor an @abstract name');
      send(socketPath, message);
      log.info({ notify_socket: socketPath, notification: message.replaceAll('\n', ' ') }, 'service manager notified');
    } catch (err) {
      const e = unavailable('CLIP_SERVICE_NOTIFY_FAILED', `notify the service manager on ${socketPath.slice(0, 120)}: ${messageOf(err)}`, err);
      log.error({ err: e.message, code: e.code }, 'service manager notification failed');
    }
  };
  return {
    enabled: true,
    // One datagram: systemd applies MAINPID= before READY=1 within a message, so the unit never
    // becomes ready with the old main process.
    ready: (status) => notify(`MAINPID=${pid}\nREADY=1\nSTATUS=${status.replaceAll('\n', ' ').slice(0, 200)}`),
    stopping: () => notify('STOPPING=1\nSTATUS=stopping: unmounting every layer'),
  };
}
