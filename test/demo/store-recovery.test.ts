/**
 * DiskImageStore.open after a crash: a write of image data that never finished (an upload, a
 * stage, an import: the record still carries its token) leaves the image `queued`, without the
 * data it was writing; an image whose stage had finished keeps it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DiskImageStore, type ImageRecord } from '../../server/demo/store';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'glance-edge-recovery-'));
  for (const sub of ['images', 'staging', 'blobs']) mkdirSync(path.join(dir, sub));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function left(status: string, writing: string | undefined, id: string): Promise<ImageRecord> {
  const scratch = await DiskImageStore.open(path.join(dir, 'scratch'));
  const record = { ...scratch.newRecord(id), status, size: 5, ...(writing === undefined ? {} : { writing }) };
  writeFileSync(path.join(dir, 'images', `${id}.json`), JSON.stringify(record));
  writeFileSync(path.join(dir, 'staging', id), 'AAAAA');
  const store = await DiskImageStore.open(dir);
  return store.get(id) as ImageRecord;
}

describe('DiskImageStore.open after a crash', () => {
  it.each(['uploading', 'importing'])('puts an image %s by a write that never finished back to queued, without its staged data', async (status) => {
    const id = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
    const record = await left(status, 'a-write', id);
    expect(record).toMatchObject({ status: 'queued', size: null });
    expect(record).not.toHaveProperty('writing');
    expect(existsSync(path.join(dir, 'staging', id))).toBe(false);
    expect(JSON.parse(readFileSync(path.join(dir, 'images', `${id}.json`), 'utf8'))).toMatchObject({ status: 'queued', size: null });
  });

  it('keeps an image whose stage had finished (uploading, no write running) and its staged data', async () => {
    const id = '7f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
    expect(await left('uploading', undefined, id)).toMatchObject({ status: 'uploading', size: 5 });
    expect(readFileSync(path.join(dir, 'staging', id), 'utf8')).toBe('AAAAA');
  });
});
