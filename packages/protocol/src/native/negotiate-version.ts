import { ProtocolError } from '../errors';
import { type HelloFrame, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from './frames';

export interface SupportedVersions {
  min: number;
  max: number;
}

/** The versions this build of Keel speaks. */
export const SUPPORTED_PROTOCOL_VERSIONS: SupportedVersions = {
  min: MIN_PROTOCOL_VERSION,
  max: PROTOCOL_VERSION,
};

/**
 * The broker's side of the handshake (docs/protocol.md, "Versioning"): answer with the highest
 * version both sides speak, or fail with UNSUPPORTED_VERSION (sent back as a fatal ERROR frame).
 */
export function negotiateProtocolVersion(
  hello: Pick<HelloFrame, 'protocolVersion' | 'minProtocolVersion'>,
  supported: SupportedVersions = SUPPORTED_PROTOCOL_VERSIONS,
): number {
  const clientMax = hello.protocolVersion;
  const clientMin = hello.minProtocolVersion ?? clientMax;
  const version = Math.min(clientMax, supported.max);
  if (version < supported.min || version < clientMin || clientMin > clientMax) {
    throw new ProtocolError(
      `no common protocol version: client speaks ${clientMin}..${clientMax}, broker ${supported.min}..${supported.max}`,
      'UNSUPPORTED_VERSION',
    );
  }
  return version;
}
