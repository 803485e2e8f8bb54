import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { startLab } from '../test/integration/lab/sshd.js';
import { descendants } from '../test/integration/lab/procs.js';
import { helperCommand } from '../src/ports/difusor.js';

function stat(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ').map(Number);
    return ((f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0)) * 10;
  } catch { return 0; }
}
const tree = (root: number) => [root, ...descendants(root)].reduce((a, p) => a + stat(p), 0);
const lab = await startLab({ difusores: 1 });
const d = lab.difusores[0]!;
writeFileSync('/tmp/exp/kh', `[${d.host}]:${d.port} ${d.hostKey}\n`);
const ctl = '/tmp/exp/ctl2.sock';
const base = ['-F', '/dev/null', '-p', String(d.port), '-i', lab.clientKeyFile, '-o', 'IdentitiesOnly=yes', '-o', 'UserKnownHostsFile=/tmp/exp/kh', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', `ControlPath=${ctl}`];
const master = spawn('ssh', [...base, '-M', '-N', '-o', 'ControlMaster=yes', `root@${d.host}`], { stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 1500));
const difusor = { id: 'd1', path: d.path, access: 'full' } as any;
const cases: Record<string, string> = {
  true: 'true',
  'sh -c true': "sh -c true",
  'helper status': helperCommand(difusor, 'status', []),
  'helper prune 5': helperCommand(difusor, 'prune', ['5']),
};
for (const [name, cmd] of Object.entries(cases)) {
  const n = 20;
  const s0 = tree(d.sshdPid);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) execFileSync('ssh', [...base, `root@${d.host}`, cmd], { stdio: ['ignore', 'ignore', 'inherit'] });
  console.log(`${name}: ${((performance.now() - t0) / n).toFixed(1)} ms wall, sshd tree CPU ${((tree(d.sshdPid) - s0) / n).toFixed(1)} ms per call`);
}
master.kill();
await lab.stop();
process.exit(0);
