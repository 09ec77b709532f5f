// Reading files from the profile's mounts, over `wasi:filesystem` (the
// JavaScript engine has no file API of its own). Paths are guest paths
// (`/data/q3.txt`); the host decides every open against the profile's mounts
// and records it, so a path outside them fails here with the host's
// error code and a denied event in the run's evidence.
//
// What it defends against: a refusal surfacing as an opaque exception (the
// `ToolError` names the path and the WASI error code), and reading without
// bound (the caller gives a limit; the default is 16 MiB).

import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { ToolError } from './core.js';

/** Default cap on the bytes `readFile` returns. */
const DEFAULT_LIMIT = 16 * 1024 * 1024;

/** Bytes asked for per read. */
const CHUNK = 64 * 1024;

function codeOf(e) {
  const payload = e && typeof e === 'object' && 'payload' in e ? e.payload : e;
  if (typeof payload === 'string') return payload;
  if (payload && typeof payload === 'object' && 'tag' in payload) return String(payload.tag);
  return e instanceof Error ? e.message : String(e);
}

/** The preopened directory containing `path` and the path relative to it. */
function locate(path) {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new ToolError(`read ${path}: give an absolute guest path, e.g. /data/file.txt`);
  }
  let best = null;
  for (const [descriptor, mount] of getDirectories()) {
    const prefix = mount.endsWith('/') ? mount : `${mount}/`;
    if ((path === mount || path.startsWith(prefix) || mount === '/') && (!best || mount.length > best.mount.length)) {
      best = { descriptor, mount };
    }
  }
  if (!best) throw new ToolError(`read ${path}: no mount of this run contains it`);
  const relative = path.slice(best.mount.length).replace(/^\/+/, '');
  return { descriptor: best.descriptor, relative: relative === '' ? '.' : relative };
}

/** The bytes of the file at guest path `path` (at most `limit` bytes). */
export function readFile(path, { limit = DEFAULT_LIMIT } = {}) {
  const { descriptor, relative } = locate(path);
  let file;
  try {
    file = descriptor.openAt({ symlinkFollow: true }, relative, {}, { read: true });
  } catch (e) {
    throw new ToolError(`read ${path}: refused or failed (wasi:filesystem error-code ${codeOf(e)})`);
  }
  let stream;
  try {
    stream = file.readViaStream(0n);
  } catch (e) {
    throw new ToolError(`read ${path}: refused or failed (wasi:filesystem error-code ${codeOf(e)})`);
  }
  const chunks = [];
  let total = 0;
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(BigInt(CHUNK));
    } catch (e) {
      if (codeOf(e) === 'closed') break;
      throw new ToolError(`read ${path}: failed (${codeOf(e)})`);
    }
    total += chunk.length;
    if (total > limit) throw new ToolError(`read ${path}: larger than the limit of ${limit} bytes`);
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** The UTF-8 text of the file at guest path `path`. */
export function readTextFile(path, options) {
  return new TextDecoder('utf-8', { fatal: true }).decode(readFile(path, options));
}
