/**
 * `keel broker`: runs one broker node. Loads the configuration (flags > KEEL_* > file > defaults),
 * logs it once with secrets redacted, and starts the node. The first SIGINT/SIGTERM stops it
 * gracefully (exit 0 once stopped); a second one exits at once with 130 (graphile-worker
 * `src/main.ts` does the same). With TLS configured, SIGHUP reloads the certificate files.
 */
import { createLogger, guardStrayPostgresErrors, loadConfig, redactConfig, startNode } from '@keel/server';
import type { Output } from '../output';

export interface BrokerOptions {
  config?: string;
  db?: string;
  lockDb?: string;
  name?: string;
  cluster?: string;
  host?: string;
  port?: string;
  stompPort?: string;
  adminPort?: string;
  sslPort?: string;
  stompSslPort?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  needClientAuth?: boolean;
  adminHttps?: string;
  advertisedUrl?: string[];
  user?: string[];
  adminUser?: string;
  adminPassword?: string;
  adminReadAuth?: boolean;
  allowLinkStealing?: boolean;
  schedulerTimeZone?: string;
  locker?: string;
  lockDir?: string;
  lockAcquireSleepInterval?: string;
  lockKeepAlivePeriod?: string;
  leaseDuration?: string;
  fenceCommand?: string;
  storeDir?: string;
  networkConnector?: string[];
  logLevel?: string;
}

export const EXIT_FORCED = 130;

/** Resolves when the node has stopped after a signal; the caller exits. */
export async function runBroker(options: BrokerOptions, _output: Output): Promise<never> {
  const config = loadConfig({ argv: { ...options } });
  const logger = createLogger({ name: config.name, level: config.logLevel });
  guardStrayPostgresErrors(logger);
  logger.info({ config: redactConfig(config) }, 'effective configuration');

  let signals = 0;
  let stopRequested: ((signal: NodeJS.Signals) => void) | null = null;
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    stopRequested = resolve;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, 'stopping (send the signal again to exit at once)');
      stopRequested?.(signal);
    } else {
      logger.warn({ signal }, 'second signal: exiting without a clean stop');
      process.exit(EXIT_FORCED);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let node: Awaited<ReturnType<typeof startNode>>;
  try {
    node = await startNode(config, logger);
  } catch (err) {
    logger.fatal({ err }, 'node failed to start');
    process.exit(1);
  }
  logger.info({ endpoints: node.endpoints() }, 'node started');
  if (config.tls) {
    // SIGHUP re-reads the TLS PEM files; open connections keep their session (tls/tls-context.ts).
    process.on('SIGHUP', () => {
      try {
        node.reloadTls();
      } catch (err) {
        logger.error(
          { err: (err as Error).message },
          'TLS reload failed: the previous certificates stay in use',
        );
      }
    });
  }

  await stopSignal;
  try {
    await node.stop();
    logger.info('node stopped');
  } catch (err) {
    logger.error({ err }, 'node did not stop cleanly');
    process.exit(1);
  }
  process.exit(0);
}
