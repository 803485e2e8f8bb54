import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

// The house has no circle: eslint keeps the floors in order (commands → ui → core ← adapters); this keeps
// the rooms of one floor, and the capability folders of the core, from importing each other round.
const SRC = path.resolve('src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'(\.{1,2}\/[^']+)'/g)].map((m) => m[1] as string);
  return found.map((spec) => path.resolve(path.dirname(file), spec).replace(/\.js$/, '.ts'));
}

function findCircle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const trail: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...trail.slice(trail.indexOf(node)), node];
    state.set(node, 'open');
    trail.push(node);
    for (const next of graph.get(node) ?? []) {
      const circle = visit(next);
      if (circle) return circle;
    }
    trail.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const circle = visit(node);
    if (circle) return circle;
  }
  return undefined;
}

test('no file of src imports itself back through others', () => {
  const files = sources(SRC);
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((i) => files.includes(i))]));
  const circle = findCircle(graph);
  expect(circle?.map((f) => path.relative(SRC, f)).join(' → ')).toBeUndefined();
});

test('no capability folder of the core imports another that imports it back', () => {
  const core = path.join(SRC, 'core');
  const folderOf = (f: string): string => path.relative(core, f).split(path.sep)[0] as string;
  const graph = new Map<string, string[]>();
  for (const f of sources(core)) {
    const from = folderOf(f);
    const to = importsOf(f).filter((i) => i.startsWith(core)).map(folderOf).filter((d) => d !== from);
    graph.set(from, [...new Set([...(graph.get(from) ?? []), ...to])]);
  }
  expect(findCircle(graph)?.join(' → ')).toBeUndefined();
});

test('the detector sees a circle when there is one', () => {
  expect(findCircle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
});
