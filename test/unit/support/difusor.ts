import type { Difusor } from '../../../src/core/registry/types.js';

/** A local difusor under /srv/<id>: what the core's unit tests hand their fake connectors. */
export function localDifusor(id: string): Difusor {
  return {
    id,
    name: `Difusor ${id}`,
    transport: 'local',
    port: 22,
    path: `/srv/${id}`,
    public_url: `http://localhost/${id}/`,
    status: 'active',
    access: 'shell',
  };
}
