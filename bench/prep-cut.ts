import { createHash } from 'node:crypto';
import { link, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * PREP-shaped synthetic cuts: per casilla two acta images of JPEG size (random bytes, incompressible
 * like JPEG) and a casilla page; aggregates (CSV, JSON, HTML, zip-sized blob) rewritten every cut.
 * The next cut hard-links every unchanged file to the previous one, as a producer's packaging does.
 */
export interface CutShape {
  casillas: number;
  /** Casillas with actas in this cut (grows cut by cut). */
  counted: number;
  imageBytes: number;
  seed: string;
  /** Pad each casilla page to about this size with table markup, as the PREP's pages are (text that compresses). */
  pageBytes?: number;
}

/** Rows of a results table: markup repeats, figures differ, as in a real page. */
function tableRows(id: string, stamp: string, bytes: number): string {
  const rows: string[] = [];
  let size = 0;
  for (let r = 0; size < bytes; r++) {
    const row = `<tr class="partido p${r % 12}"><td class="nombre">Partido ${r % 12}</td><td class="votos">${(r * 7919 + id.length * 31) % 997}</td><td class="pct">${((r * 13) % 100).toFixed(2)}%</td><td class="corte">${stamp}</td></tr>\n`;
    rows.push(row);
    size += row.length;
  }
  return rows.join('');
}

function bytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

const pad = (n: number, w: number): string => String(n).padStart(w, '0');

export function casillaId(i: number): string {
  return `${pad(Math.floor(i / 4) + 1, 4)}-${['B', 'C1', 'C2', 'E1'][i % 4]}`;
}

export async function writeCut(dir: string, cut: string, shape: CutShape, previousDir?: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, 'actas'), { recursive: true });
  await mkdir(path.join(dir, 'casillas'), { recursive: true });
  await mkdir(path.join(dir, 'datos'), { recursive: true });
  const rows: string[] = [];
  for (let i = 0; i < shape.counted; i++) {
    const id = casillaId(i);
    for (const side of ['A', 'B']) {
      const name = path.join('actas', `${id}_${side}.jpg`);
      const target = path.join(dir, name);
      const previous = previousDir ? path.join(previousDir, name) : undefined;
      if (previous && (await stat(previous).catch(() => undefined))) await link(previous, target);
      else await writeFile(target, bytes(`${shape.seed}:${id}:${side}`, shape.imageBytes));
    }
    const votes = (i * 7919) % 300;
    rows.push(`'${id},${votes},${300 - votes},${createHash('sha256').update(id).digest('hex')}`);
  }
  const stamp = `${cut.slice(6, 8)}/${cut.slice(4, 6)}/${cut.slice(0, 4)} ${cut.slice(9, 11)}:${cut.slice(11, 13)} (UTC-5)`;
  const csv = `Gubernatura Durango 2022\n${stamp}\nACTAS_ESPERADAS,${shape.casillas},ACTAS_CAPTURADAS,${shape.counted}\nCLAVE_CASILLA,PAN,MORENA,CODIGO_INTEGRIDAD\n${rows.join('\n')}\n`;
  await writeFile(path.join(dir, 'datos', 'DGO_GUB_2022.csv'), csv);
  await writeFile(path.join(dir, 'datos', 'resumen.json'), JSON.stringify({ corte: stamp, capturadas: shape.counted, esperadas: shape.casillas }));
  await writeFile(path.join(dir, 'datos', 'DGO_GUB_2022.zip'), bytes(`${cut}:zip`, Math.max(1024, csv.length >> 2)));
  // Every casilla page carries the cut's time, so all of them are rewritten each cut.
  for (let i = 0; i < shape.casillas; i += 1) {
    const id = casillaId(i);
    await writeFile(
      path.join(dir, 'casillas', `${id}.html`),
      `<!doctype html><title>Casilla ${id}</title><p>Corte ${stamp}</p><p>${i < shape.counted ? 'Acta capturada' : 'Pendiente'}</p>\n` +
        (shape.pageBytes ? `<table>\n${tableRows(id, stamp, shape.pageBytes)}</table>\n` : ''),
    );
  }
  await writeFile(
    path.join(dir, 'index.html'),
    `<!doctype html><meta charset="utf-8"><title>PREP Durango 2022</title><h1>PREP Durango 2022</h1><p id="corte">Corte: ${stamp}</p><p>Actas capturadas: ${shape.counted} de ${shape.casillas}</p>\n`,
  );
}

export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk('');
  return out.sort();
}
