import { reportProgress } from '../../src/ui/report-view.js';

function fakeStream() {
  const writes: string[] = [];
  return { writes, stream: { columns: 120, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream };
}

test('on a terminal: one line redrawn with each difusor\'s phase and a bar of the bytes read, cleared at the end', () => {
  const { writes, stream } = fakeStream();
  const progress = reportProgress(stream, { enabled: true });
  progress.update('ujed', { phase: 'pulling' });
  progress.update('ujed', { phase: 'counting', done: 50, total: 100 });
  progress.update('itvg', { phase: 'failed', error: 'down' });
  progress.done();
  expect(writes[0]).toBe('\r\x1b[Kujed pulling logs');
  expect(writes.join('')).toContain('ujed [######......] 50%  itvg failed');
  expect(writes.at(-1)).toBe('\r\x1b[K');
});

test('without a terminal (cron, --json): nothing at all', () => {
  const { writes, stream } = fakeStream();
  const progress = reportProgress(stream, { enabled: false });
  progress.update('ujed', { phase: 'counting', done: 1, total: 2 });
  progress.done();
  expect(writes).toEqual([]);
});
