/** Suffixes rsync must not compress (--skip-compress): images, archives and media gain nothing but CPU. */
export const SKIP_COMPRESS = 'jpg/jpeg/png/gif/webp/zip/gz/tgz/bz2/xz/7z/rar/pdf/mp4/mp3';

const SKIPPED = new Set(SKIP_COMPRESS.split('/'));

/** Whether rsync -z --skip-compress would compress this file. */
export function compressible(file: string): boolean {
  const dot = file.lastIndexOf('.');
  return dot <= file.lastIndexOf('/') || !SKIPPED.has(file.slice(dot + 1).toLowerCase());
}
