// Compile-only usage of socket-lease/cloudflare, imported by the package's own name the
// way a Worker project would (tsconfig.workers.json).
import {
  CLOSE_EVICTED,
  CLOSE_LEASE_EXPIRED,
  ConfigError,
  HEARTBEAT_PING,
  HEARTBEAT_PONG,
  SocketLeaseObject,
  createSocketLeaseWorker,
  handleSocketLease,
  readConfig,
  type ErrorBody,
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
  fallback: () => new Response('ok'),
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
const codes: [4008, 4009] = [CLOSE_EVICTED, CLOSE_LEASE_EXPIRED];
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
  return `${body.code}: ${body.error}`;
}

void policy;
void codes;
void heartbeat;
void error;
