// Compile-only usage of socket-lease/cloudflare, imported by the package's own name the
// way a Worker project would (tsconfig.workers.json).
import {
  CLOSE_EVICTED,
  CLOSE_LEASE_EXPIRED,
  CLOSE_MESSAGE_TOO_BIG,
  CLOSE_REASONS,
  ConfigError,
  DEFAULT_MAX_PAYLOAD,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  SocketLeaseObject,
  createSocketLeaseWorker,
  handleSocketLease,
  readConfig,
  type ErrorBody,
  type ErrorReason,
  type QuotaRefusalBody,
  type SocketAttachment,
  type SocketLeaseConfig,
} from 'socket-lease/cloudflare';

interface Env {
  SOCKET_LEASE: DurableObjectNamespace<SocketLeaseObject>;
  SOCKET_LEASE_LIMIT: string;
}

export { SocketLeaseObject };

export default createSocketLeaseWorker({
  userId: (request: Request) => request.headers.get('x-user'),
  allowedOrigins: ['https://app.example'],
  maxPayload: DEFAULT_MAX_PAYLOAD * 2,
  fallback: () => new Response('ok'),
});

export const byFunction = createSocketLeaseWorker({
  userId: () => 'u1',
  allowedOrigins: async (origin: string | null, request: Request) => origin === null || request.url.startsWith(origin),
});

export const composed: ExportedHandler<Env> = {
  async fetch(request, env) {
    const answer = await handleSocketLease(request, env as unknown as Record<string, unknown>, {
      userId: async () => 'u1',
      path: '/socket',
    });
    return answer ?? new Response('not ours', { status: 404 });
  },
};

const config: SocketLeaseConfig = readConfig({ SOCKET_LEASE_LIMIT: '5' });
const policy: 'reject' | 'evict-oldest' | 'evict-idle' = config.policy;
const codes: [4008, 4009, 1009] = [CLOSE_EVICTED, CLOSE_LEASE_EXPIRED, CLOSE_MESSAGE_TOO_BIG];
const tooBig: string = CLOSE_REASONS[CLOSE_MESSAGE_TOO_BIG];
const maxPayload: number = config.maxPayload;
const origins: string[] | undefined = config.allowedOrigins;
const heartbeat: string = HEARTBEAT_PING + HEARTBEAT_PONG;
const error: 'INVALID_CONFIG' = new ConfigError('x').code;

export function leaseOf(ws: WebSocket): string {
  const att = ws.deserializeAttachment() as SocketAttachment;
  return att.leaseId;
}

export async function explain(res: Response): Promise<string> {
  if (res.status === 429) {
    const body = (await res.json()) as QuotaRefusalBody;
    return `${body.reason}: ${body.active}/${body.limit}, retry in ${res.headers.get('retry-after')} s`;
  }
  const body = (await res.json()) as ErrorBody;
  const reason: ErrorReason = body.reason;
  return `${reason} (${body.code}): ${body.error}`;
}

void policy;
void codes;
void tooBig;
void maxPayload;
void origins;
void heartbeat;
void error;
