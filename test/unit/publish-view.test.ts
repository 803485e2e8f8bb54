import type { Difusor } from '../../src/core/registry/types.js';
import { liveView } from '../../src/ui/publish-view.js';

// listr2 loads only when the live view starts: whatever the run reports before it has arrived must still
// reach its rows, and finish() must wait for every row, including one that failed.
describe('the live publish view', () => {
  it('settles rows whose phases arrived before listr2 had loaded', async () => {
    const view = liveView();
    const targets = [{ id: 'ujed' }, { id: 'siglo' }] as Difusor[];
    view.start(targets);
    view.observer.phase('ujed', 'connecting');
    view.observer.progress?.('ujed', 1024, 50);
    view.observer.phase('ujed', 'live');
    view.observer.phase('siglo', 'failed', 'disk full');
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise((resolve) => (timer = setTimeout(resolve, 20_000, 'stuck')));
    await expect(Promise.race([view.finish().then(() => 'finished'), stuck])).resolves.toBe('finished');
    clearTimeout(timer);
  });
});
